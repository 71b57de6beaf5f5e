/*
 * The gzip compression library (envoy.compression.gzip.compressor) over zlib's deflate: one
 * stream per compressed body, fed frame by frame. Each call ends with a sync flush (or the
 * finish), so what the client has received so far always decodes; that costs a few bytes per
 * frame and is what Envoy does. Not for: decompression, buffering a whole body.
 */
#include <string.h>

#include <h2o/socket.h>

#include "filters/compressor/compressor.h"
#include "log.h"

/* windowBits + 16 asks zlib to write the gzip header and trailer instead of zlib's. */
#define GZIP_WRAPPER 16

int lg_gzip_init(lg_gzip_t *g, const lg_gzip_params_t *p)
{
    memset(g, 0, sizeof(*g));
    g->chunk_size = p->chunk_size;
    if (deflateInit2(&g->z, p->level, Z_DEFLATED, p->window_bits + GZIP_WRAPPER, p->mem_level, p->strategy) != Z_OK)
        return -1;
    g->ready = 1;
    return 0;
}

int lg_gzip_compress(lg_gzip_t *g, const void *in, size_t len, int finish, lg_data_t *out)
{
    if (!g->ready)
        return -1;
    if (g->out == NULL)
        h2o_buffer_init(&g->out, &h2o_socket_buffer_prototype);
    h2o_buffer_consume(&g->out, g->out->size); /* the previous output was copied on by now */
    int mode = finish ? Z_FINISH : Z_SYNC_FLUSH;
    g->z.next_in = (Bytef *)in;
    g->z.avail_in = (uInt)len;
    for (;;) {
        h2o_iovec_t room = h2o_buffer_reserve(&g->out, g->chunk_size);
        if (room.base == NULL)
            lg_fatal("out of memory");
        g->z.next_out = (Bytef *)room.base;
        g->z.avail_out = (uInt)room.len;
        int rc = deflate(&g->z, mode);
        g->out->size += room.len - g->z.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc == Z_BUF_ERROR && g->z.avail_in == 0 && g->z.avail_out != 0)
            break; /* nothing left to flush: a second flush in a row */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
        /* Output space left over means the flush completed (for a finish, Z_STREAM_END says it). */
        if (!finish && g->z.avail_in == 0 && g->z.avail_out != 0)
            break;
    }
    out->base = g->out->bytes;
    out->len = g->out->size;
    return 0;
}

void lg_gzip_dispose(lg_gzip_t *g)
{
    if (g->ready)
        deflateEnd(&g->z);
    g->ready = 0;
    if (g->out != NULL)
        h2o_buffer_dispose(&g->out);
}
