/*
 * libFuzzer target for the config path: YAML/JSON text -> converter -> validator, and for every
 * input that loads, JSON printing and reading the JSON back, which must succeed (what legate prints
 * it must read). Seeds: tests/configs. Run by ./scripts/test for a bounded time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "pb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lg_bootstrap_t b;
    lg_error_t err;
    if (lg_bootstrap_load_text(&b, (const char *)data, size, "fuzz.yaml", &err) != 0)
        return 0;
    char *json = lg_pb_to_json(&b.pb->base, 0);
    lg_bootstrap_t again;
    if (lg_bootstrap_load_text(&again, json, strlen(json), "printed.json", &err) != 0) {
        fprintf(stderr, "printed JSON does not load back: %s\n%s\n", err.msg, json);
        abort();
    }
    lg_bootstrap_dispose(&again);
    free(json);
    lg_bootstrap_dispose(&b);
    return 0;
}
