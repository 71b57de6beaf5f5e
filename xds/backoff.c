/*
 * Jittered exponential backoff for the xDS client: how long to wait before reconnecting a lost
 * stream (500 ms growing to 30 s, as Envoy's gRPC mux does). Equal jitter keeps the first retry
 * fast (250-500 ms) while a fleet of proxies that lost the same control plane spreads its retries.
 */
#include "xds/xds_internal.h"

uint64_t lg__xds_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, uint32_t rnd)
{
    if (attempt == 0)
        attempt = 1;
    uint64_t ceiling = base_ms;
    for (unsigned i = 1; i < attempt && ceiling < max_ms; ++i)
        ceiling *= 2;
    if (ceiling > max_ms)
        ceiling = max_ms;
    uint64_t half = ceiling / 2;
    return ceiling - half + (half > 0 ? rnd % (half + 1) : 0);
}
