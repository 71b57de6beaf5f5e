/*
 * Unit tests of the stats core (src/stats.c): counters summed over worker blocks, and histograms:
 * bucketing on Envoy's default bounds, merging of per-worker blocks on read, quantiles estimated
 * by interpolation within a bucket and clamped to the recorded min and max.
 */
#include <math.h>
#include <stdlib.h>

#include "lg_test.h"
#include "stats.h"

static lg_stats_cells_t *w1, *w2;

LG_TEST(counters_sum_over_blocks)
{
    lg_stat_id_t c = lg_stats_register("t.counter", LG_STAT_COUNTER);
    LG_EXPECT_INT(lg_stats_register("t.counter", LG_STAT_COUNTER), c);
    lg_stats_add(w1, c, 3);
    lg_stats_inc(w2, c);
    LG_EXPECT_INT(lg_stats_value(c), 4);
    /* Recording into a counter id is ignored. */
    lg_stats_record(w1, c, 10);
    LG_EXPECT_INT(lg_stats_value(c), 4);
}

LG_TEST(histogram_buckets_and_merge)
{
    lg_stat_id_t h = lg_stats_register("t.hist", LG_STAT_HISTOGRAM);
    lg_stat_type_t type;
    lg_stats_name(h, &type);
    LG_EXPECT_INT(type, LG_STAT_HISTOGRAM);
    lg_stats_hist_t v;
    lg_stats_hist_value(h, &v);
    LG_EXPECT_INT(v.count, 0);
    LG_EXPECT(isnan(lg_stats_hist_quantile(&v, 0.5)));

    /* 0 -> le 0.5, 1 -> le 1, 3 -> le 5, 7 -> le 10 (worker 1); 7 and 4000000 (overflow) on worker 2. */
    lg_stats_record(w1, h, 0);
    lg_stats_record(w1, h, 1);
    lg_stats_record(w1, h, 3);
    lg_stats_record(w1, h, 7);
    lg_stats_record(w2, h, 7);
    lg_stats_record(w2, h, 4000000);
    lg_stats_hist_value(h, &v);
    LG_EXPECT_INT(v.count, 6);
    LG_EXPECT_INT(lg_stats_value(h), 6);
    LG_EXPECT_INT(v.sum, 4000018);
    LG_EXPECT_INT(v.min, 0);
    LG_EXPECT_INT(v.max, 4000000);
    LG_EXPECT_INT(v.buckets[0], 1);
    LG_EXPECT_INT(v.buckets[1], 1);
    LG_EXPECT_INT(v.buckets[2], 1);
    LG_EXPECT_INT(v.buckets[3], 2);
    LG_EXPECT_INT(v.buckets[LG_STATS_HIST_BUCKETS], 1);
    LG_EXPECT(lg_stats_hist_quantile(&v, 0) == 0);
    LG_EXPECT(lg_stats_hist_quantile(&v, 1) == 4000000);
}

LG_TEST(histogram_quantiles_interpolate)
{
    lg_stat_id_t h = lg_stats_register("t.quantiles", LG_STAT_HISTOGRAM);
    /* 100 values, 10 each of 11..20 ms: all in the (10, 25] bucket, so interpolation runs over
     * [min 11, 25] and stays inside the recorded range. */
    for (int i = 0; i < 100; ++i)
        lg_stats_record(i % 2 ? w1 : w2, h, 11 + (uint64_t)(i % 10));
    lg_stats_hist_t v;
    lg_stats_hist_value(h, &v);
    LG_EXPECT_INT(v.count, 100);
    LG_EXPECT(lg_stats_hist_quantile(&v, 0) == 11);
    LG_EXPECT(lg_stats_hist_quantile(&v, 1) == 20);
    double p50 = lg_stats_hist_quantile(&v, 0.5);
    LG_EXPECT(fabs(p50 - 15.5) < 1e-9); /* 11 + (20 - 11) * 50 / 100 */
    double prev = -1;
    for (size_t i = 0; i < LG_STATS_N_QUANTILES; ++i) {
        double q = lg_stats_hist_quantile(&v, lg_stats_quantiles[i]);
        LG_EXPECT(q >= prev && q >= 11 && q <= 20);
        prev = q;
    }

    /* Two buckets: 50 values of 2 (le 5) and 50 of 40 (le 50); P25 lies in the first, P75 in
     * the second, by linear interpolation over the bucket's span clamped to min/max. */
    lg_stat_id_t h2 = lg_stats_register("t.two_buckets", LG_STAT_HISTOGRAM);
    for (int i = 0; i < 50; ++i) {
        lg_stats_record(w1, h2, 2);
        lg_stats_record(w2, h2, 40);
    }
    lg_stats_hist_value(h2, &v);
    double p25 = lg_stats_hist_quantile(&v, 0.25), p75 = lg_stats_hist_quantile(&v, 0.75);
    LG_EXPECT(fabs(p25 - 3.5) < 1e-9);  /* lo max(1, 2) = 2, hi 5: 2 + 3 * 25/50 */
    LG_EXPECT(fabs(p75 - 32.5) < 1e-9); /* lo 25, hi min(50, 40) = 40: 25 + 15 * (75 - 50)/50 */
    LG_EXPECT(lg_stats_hist_quantile(&v, 0.5) == 5); /* the top of the first bucket */
}

/* Runs last: it fills the registry. Tens of thousands of xDS clusters must not end the process:
 * past the capacity every new stat shares one sink, and histograms past theirs stop recording. */
LG_TEST(full_registry_degrades_instead_of_aborting)
{
    lg_stat_id_t h = 0;
    for (int i = 0; i < LG_STATS_HIST_MAX + 5; ++i)
        h = lg_stats_registerf(LG_STAT_HISTOGRAM, "full.h%d", i);
    lg_stats_record(w1, h, 7); /* past the histogram slots: ignored, no crash */
    LG_EXPECT_INT(lg_stats_value(h), 0);
    lg_stat_id_t last = 0, before = 0;
    for (int i = 0; i < LG_STATS_MAX + 10; ++i) {
        before = last;
        last = lg_stats_registerf(LG_STAT_COUNTER, "full.c%d", i);
    }
    LG_EXPECT_INT(last, LG_STATS_MAX - 1);
    LG_EXPECT_INT(before, LG_STATS_MAX - 1);
    lg_stats_inc(w1, last);
    lg_stat_type_t type;
    LG_EXPECT_STR(lg_stats_name(LG_STATS_MAX - 1, &type), "legate.stats_overflow");
    lg_stat_id_t again;
    LG_EXPECT_INT(lg_stats_find("full.c1", &again), 0); /* earlier names are still there */
}

int main(void)
{
    w1 = lg_stats_cells_new();
    w2 = lg_stats_cells_new();
    lg_stats_attach(w1);
    lg_stats_attach(w2);
    LG_RUN(counters_sum_over_blocks);
    LG_RUN(histogram_buckets_and_merge);
    LG_RUN(histogram_quantiles_interpolate);
    LG_RUN(full_registry_degrades_instead_of_aborting);
    free(w1);
    free(w2);
    return LG_TEST_END();
}
