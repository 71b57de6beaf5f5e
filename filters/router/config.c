/*
 * Router config: envoy.extensions.filters.http.router.v3.Router -> lg_router_config_t.
 * Main thread only.
 */
#include <stdlib.h>

#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "filters/router/router.h"
#include "log.h"

void *lg_router_create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    lg_router_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    if (msg != NULL && msg->descriptor == &envoy__extensions__filters__http__router__v3__router__descriptor) {
        const Envoy__Extensions__Filters__Http__Router__V3__Router *r = (const void *)msg;
        c->suppress_envoy_headers = r->suppress_envoy_headers;
        c->respect_expected_rq_timeout = r->respect_expected_rq_timeout;
    }
    return c;
}

void lg_router_destroy_config(void *config)
{
    free(config);
}
