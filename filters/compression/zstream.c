/*
 * zlib streams for the compression filters: see zstream.h.
 */
#include "filters/compression/zstream.h"

#include <string.h>

#include <h2o/socket.h>

#include "log.h"

/* windowBits + 16: zlib writes (or expects only) the gzip header and trailer. */
#define GZIP_WRAPPER 16

int lg_zstream_deflate_init(lg_zstream_t *s, int level, int window_bits, int mem_level, int strategy, size_t chunk_size)
{
    memset(s, 0, sizeof(*s));
    s->chunk_size = chunk_size;
    s->deflating = 1;
    if (deflateInit2(&s->z, level, Z_DEFLATED, window_bits + GZIP_WRAPPER, mem_level, strategy) != Z_OK)
        return -1;
    s->ready = 1;
    return 0;
}

int lg_zstream_inflate_init(lg_zstream_t *s, int window_bits, size_t chunk_size)
{
    memset(s, 0, sizeof(*s));
    s->chunk_size = chunk_size;
    if (inflateInit2(&s->z, window_bits + GZIP_WRAPPER) != Z_OK)
        return -1;
    s->ready = 1;
    return 0;
}

int lg_zstream_run(lg_zstream_t *s, const void *in, size_t len, int finish, uint64_t limit, lg_data_t *out)
{
    if (!s->ready)
        return Z_STREAM_ERROR;
    if (s->out == NULL)
        h2o_buffer_init(&s->out, &h2o_socket_buffer_prototype);
    h2o_buffer_consume(&s->out, s->out->size); /* the previous output was copied on by now */
    int finishing = s->deflating && finish;
    s->z.next_in = (Bytef *)in;
    s->z.avail_in = (uInt)len;
    while (!s->ended) {
        h2o_iovec_t room = h2o_buffer_reserve(&s->out, s->chunk_size);
        if (room.base == NULL)
            lg_fatal("out of memory");
        /* Never more room than the limit leaves, so the check below fires before memory grows. */
        uint64_t left = limit - s->out->size;
        size_t take = left < room.len ? (size_t)left + 1 : room.len;
        s->z.next_out = (Bytef *)room.base;
        s->z.avail_out = (uInt)take;
        int rc = s->deflating ? deflate(&s->z, finishing ? Z_FINISH : Z_SYNC_FLUSH) : inflate(&s->z, Z_NO_FLUSH);
        s->out->size += take - s->z.avail_out;
        if (s->out->size > limit)
            return LG_ZSTREAM_TOO_LARGE;
        if (rc == Z_STREAM_END)
            s->ended = 1;
        else if (rc == Z_BUF_ERROR)
            break; /* no progress possible with room to write: the input is used up */
        else if (rc != Z_OK)
            return rc;
        else if (s->z.avail_in == 0 && s->z.avail_out != 0 && !finishing)
            break; /* all input taken and room left over: everything for it is out */
    }
    out->base = s->out->bytes;
    out->len = s->out->size;
    return 0;
}

void lg_zstream_dispose(lg_zstream_t *s)
{
    if (s->ready)
        (void)(s->deflating ? deflateEnd(&s->z) : inflateEnd(&s->z));
    s->ready = 0;
    if (s->out != NULL)
        h2o_buffer_dispose(&s->out);
}
