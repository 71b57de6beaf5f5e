/*
 * Unit tests of access-log sinks (src/access_log_sink.c): records from several threads reach the
 * file whole and in each thread's order; sinks are shared by path; the writer flushes on its
 * interval and early when a buffer passes 64 KiB; reopen follows a renamed file (rotation); a sink
 * whose file cannot keep up drops and counts records instead of blocking the writing thread;
 * /dev/stdout is the process's descriptor 1; a sink released after the writer stopped is still
 * written out. Files live in a fresh directory under /tmp, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access_log_sink.h"
#include "lg_test.h"

static char dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][128];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

/* The whole file as a NUL-terminated malloc'd string ("" when absent). */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap + 1);
    if (fp != NULL) {
        size_t r;
        while ((r = fread(s + n, 1, cap - n, fp)) != 0) {
            n += r;
            if (n == cap)
                s = realloc(s, (cap *= 2) + 1);
        }
        fclose(fp);
    }
    s[n] = '\0';
    if (len != NULL)
        *len = n;
    return s;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits (bounded) until the file holds at least `size` bytes: the writer thread is the event. */
static int wait_size(const char *path, off_t size, uint64_t timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    while (file_size(path) < size) {
        if (now_ms() > deadline)
            return 0;
        poll(NULL, 0, 5);
    }
    return 1;
}

typedef struct st_producer_t {
    lg_access_log_sink_t *sink;
    unsigned id;
    int n;
    int failed;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    char line[128];
    for (int i = 0; i < p->n; ++i) {
        int len = snprintf(line, sizeof(line), "T%u %06d %s\n", p->id, i, "abcdefghijklmnopqrstuvwxyz0123456789");
        /* A ring holds 1 MiB: 5000 short records per thread never fill it, nothing may drop. */
        if (lg_access_log_sink_write(p->sink, p->id, line, (size_t)len) != 0)
            ++p->failed;
    }
    return NULL;
}

LG_TEST(test_threads_whole_records_in_order)
{
    lg_error_t err;
    const char *path = tmp_path("threads.log");
    lg_access_log_sink_t *s = lg_access_log_sink_open(path, &err);
    LG_EXPECT(s != NULL);
    enum { N_THREADS = 4, N_LINES = 5000 };
    pthread_t th[N_THREADS];
    producer_t p[N_THREADS];
    for (unsigned i = 0; i < N_THREADS; ++i) {
        p[i] = (producer_t){s, i, N_LINES, 0};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    for (unsigned i = 0; i < N_THREADS; ++i) {
        pthread_join(th[i], NULL);
        LG_EXPECT_INT(p[i].failed, 0);
    }
    lg_access_log_sink_flush_all();
    char *text = slurp(path, NULL);
    int next[N_THREADS] = {0}, bad = 0, lines = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        unsigned id;
        int seq;
        char tail[64];
        ++lines;
        if (sscanf(l, "T%u %d %63s", &id, &seq, tail) != 3 || id >= N_THREADS || seq != next[id] ||
            strcmp(tail, "abcdefghijklmnopqrstuvwxyz0123456789") != 0)
            ++bad;
        else
            ++next[id];
    }
    LG_EXPECT_INT(lines, N_THREADS * N_LINES);
    LG_EXPECT_INT(bad, 0);
    free(text);
    lg_access_log_sink_release(s);
}

LG_TEST(test_shared_by_path)
{
    lg_error_t err;
    const char *path = tmp_path("shared.log");
    lg_access_log_sink_t *a = lg_access_log_sink_open(path, &err), *b = lg_access_log_sink_open(path, &err);
    LG_EXPECT(a != NULL && a == b);
    LG_EXPECT_STR(lg_access_log_sink_path(a), path);
    lg_access_log_sink_write(a, 0, "one\n", 4);
    lg_access_log_sink_write(b, 1, "two\n", 4);
    lg_access_log_sink_release(a);
    lg_access_log_sink_write(b, 0, "three\n", 6); /* still open: b holds it */
    lg_access_log_sink_flush_all();
    char *text = slurp(path, NULL);
    LG_EXPECT(strstr(text, "one\n") != NULL && strstr(text, "two\n") != NULL && strstr(text, "three\n") != NULL);
    LG_EXPECT_INT(strlen(text), 14);
    free(text);
    lg_access_log_sink_release(b);

    LG_EXPECT(lg_access_log_sink_open(tmp_path("no/such/dir.log"), &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "cannot open access log");
    LG_EXPECT_CONTAINS(err.msg, "No such file or directory");
}

LG_TEST(test_flush_on_interval_and_threshold)
{
    lg_error_t err;
    /* Interval: a short one writes a lone record without any flush call. */
    lg_access_log_sink_set_flush_interval(20);
    const char *path = tmp_path("interval.log");
    lg_access_log_sink_t *s = lg_access_log_sink_open(path, &err);
    lg_access_log_sink_write(s, 3, "tick\n", 5);
    LG_EXPECT(wait_size(path, 5, 5000));
    lg_access_log_sink_release(s);
    lg_access_log_sink_flush_all();

    /* Threshold: with a one-minute interval, passing 64 KiB wakes the writer at once. */
    lg_access_log_sink_set_flush_interval(60000);
    path = tmp_path("threshold.log");
    s = lg_access_log_sink_open(path, &err);
    char rec[1024];
    memset(rec, 'x', sizeof(rec) - 1);
    rec[sizeof(rec) - 1] = '\n';
    lg_access_log_sink_write(s, 0, rec, sizeof(rec));
    LG_EXPECT(!wait_size(path, 1, 100)); /* one record alone waits for the interval */
    for (int i = 1; i < 70; ++i)
        lg_access_log_sink_write(s, 0, rec, sizeof(rec));
    LG_EXPECT(wait_size(path, 64 * 1024, 5000));
    lg_access_log_sink_release(s);
    lg_access_log_sink_flush_all(); /* stops the writer though its interval is one minute */
    LG_EXPECT_INT(file_size(path), 70 * 1024);
    lg_access_log_sink_set_flush_interval(LG_ACCESS_LOG_DEFAULT_FLUSH_MS);
}

LG_TEST(test_reopen_after_rotation)
{
    lg_error_t err;
    const char *path = tmp_path("rotate.log"), *rotated = tmp_path("rotate.log.1");
    lg_access_log_sink_t *s = lg_access_log_sink_open(path, &err);
    lg_access_log_sink_write(s, 0, "before\n", 7);
    lg_access_log_sink_flush_all();
    LG_EXPECT(rename(path, rotated) == 0);
    lg_access_log_sink_reopen();
    lg_access_log_sink_write(s, 0, "after\n", 6);
    lg_access_log_sink_flush_all();
    char *a = slurp(rotated, NULL), *b = slurp(path, NULL);
    LG_EXPECT_STR(a, "before\n");
    LG_EXPECT_STR(b, "after\n");
    free(a);
    free(b);
    lg_access_log_sink_release(s);
}

LG_TEST(test_full_buffer_drops_instead_of_blocking)
{
    lg_error_t err;
    const char *path = tmp_path("slow.fifo");
    LG_EXPECT(mkfifo(path, 0600) == 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    LG_EXPECT(rd >= 0);
    lg_access_log_sink_set_flush_interval(20);
    lg_access_log_sink_t *s = lg_access_log_sink_open(path, &err);
    LG_EXPECT(s != NULL);
    uint64_t dropped_before = lg_access_log_sink_dropped();
    /* Nobody reads the FIFO: the writer blocks once the pipe is full, the ring fills, then records
     * are dropped; the writing thread never waits. 3 MiB is three rings' worth. */
    char rec[1024];
    int accepted = 0, refused = 0;
    uint64_t t0 = now_ms();
    for (int i = 0; i < 3072; ++i) {
        int n = snprintf(rec, sizeof(rec), "%06d ", i);
        memset(rec + n, 'y', sizeof(rec) - (size_t)n - 1);
        rec[sizeof(rec) - 1] = '\n';
        if (lg_access_log_sink_write(s, 7, rec, sizeof(rec)) == 0)
            ++accepted;
        else
            ++refused;
    }
    LG_EXPECT(now_ms() - t0 < 2000);
    LG_EXPECT(refused > 0);
    LG_EXPECT(accepted >= 1000); /* a whole ring's worth went in */
    LG_EXPECT_INT(lg_access_log_sink_dropped() - dropped_before, refused);
    /* Read back every accepted record, whole. */
    size_t want = (size_t)accepted * sizeof(rec), got = 0;
    char *all = malloc(want + 1);
    uint64_t deadline = now_ms() + 10000;
    while (got < want && now_ms() < deadline) {
        struct pollfd p = {rd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ssize_t r = read(rd, all + got, want - got);
            if (r > 0)
                got += (size_t)r;
        }
    }
    LG_EXPECT_INT(got, want);
    int whole = 1;
    for (size_t off = 0; off + sizeof(rec) <= got; off += sizeof(rec))
        if (all[off + sizeof(rec) - 1] != '\n' || all[off + 6] != ' ' || all[off + 7] != 'y')
            whole = 0;
    LG_EXPECT(whole);
    free(all);
    lg_access_log_sink_release(s);
    lg_access_log_sink_flush_all();
    close(rd);
    unlink(path);
    lg_access_log_sink_set_flush_interval(LG_ACCESS_LOG_DEFAULT_FLUSH_MS);
}

LG_TEST(test_stdout_and_release_after_stop)
{
    lg_error_t err;
    /* /dev/stdout is descriptor 1 itself: point it at a file for the test. */
    const char *path = tmp_path("stdout.log");
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    lg_access_log_sink_t *s = lg_access_log_sink_open("/dev/stdout", &err);
    LG_EXPECT(s != NULL);
    lg_access_log_sink_write(s, LG_ACCESS_LOG_MAIN_THREAD, "to stdout\n", 10);
    LG_EXPECT(lg_access_log_sink_write(s, LG_ACCESS_LOG_MAX_THREADS, "bad id\n", 7) == -1);
    lg_access_log_sink_flush_all();
    /* Released while the writer is stopped: written out at once, and fd 1 stays open. */
    lg_access_log_sink_write(s, 0, "late\n", 5);
    lg_access_log_sink_release(s);
    LG_EXPECT(write(1, "direct\n", 7) == 7);
    dup2(saved, 1);
    close(saved);
    char *text = slurp(path, NULL);
    LG_EXPECT_STR(text, "to stdout\nlate\ndirect\n");
    free(text);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/lg_al_sink_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    LG_RUN(test_threads_whole_records_in_order);
    LG_RUN(test_shared_by_path);
    LG_RUN(test_flush_on_interval_and_threshold);
    LG_RUN(test_reopen_after_rotation);
    LG_RUN(test_full_buffer_drops_instead_of_blocking);
    LG_RUN(test_stdout_and_release_after_stop);
    lg_access_log_sink_flush_all();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return LG_TEST_END();
}
