/*
 * HTTP/1.1 chunked transfer coding (RFC 9112 §7.1): legate's own strict, incremental decoder and
 * the small encoder helpers.
 *
 * The decoder is a byte-level state machine fed whatever slices the socket produced (split
 * anywhere, one byte at a time included). It never copies body bytes: each DATA result is a range
 * of the caller's input. It rejects everything picohttpparser's phr_decode_chunked lets through
 * and request smugglers use: non-hex sizes ("0x5", "0_2e", "+5", " 5"), more than 16 hex digits or
 * sizes past INT64_MAX, bare LF or lone CR anywhere in the framing, chunk data not followed by
 * CRLF, malformed or overlong chunk extensions (well-formed ones are ignored), framing overhead out
 * of proportion to the data (10^6 one-byte chunks), and trailer sections that break the head
 * rules (obs-fold, bad characters, too large, too many fields).
 *
 * Not for: Content-Length or close-delimited bodies (the caller counts those), compression, I/O.
 */
#ifndef LG_HTTP1_CHUNKED_H
#define LG_HTTP1_CHUNKED_H

#include "http1_parser.h"

/* Once this much framing overhead was seen, overhead may not exceed three times the data. */
#define LG_HTTP1_CHUNK_OVERHEAD_FLOOR (100 * 1024)

/* The longest chunk-size line lg_http1_chunked_encode_size writes: 16 hex digits + CRLF. */
#define LG_HTTP1_CHUNK_SIZE_LINE_MAX 18

typedef enum en_lg_http1_chunked_status_t {
    LG_HTTP1_CHUNKED_ERROR = -1, /* decoder->error says why; answer it and close */
    LG_HTTP1_CHUNKED_NEED_MORE = 0,
    LG_HTTP1_CHUNKED_DATA = 1, /* *data is body bytes */
    LG_HTTP1_CHUNKED_DONE = 2, /* last chunk and trailer section complete */
} lg_http1_chunked_status_t;

/* One chunked body being decoded. Initialise with lg_http1_chunked_decoder_init; owned by the
 * stream that reads the body, used from that stream's thread only. */
typedef struct st_lg_http1_chunked_decoder_t {
    /* Filled when DONE: the trailer fields, slices of the buffer given to that call. */
    lg_http1_header_t *trailers;
    size_t num_trailers;
    /* Trailer fields dropped: framing and routing fields (content-length, transfer-encoding,
     * host, connection, keep-alive, proxy-connection, te, trailer, upgrade) that must never be
     * merged into the head (RFC 9110 §6.5.1), and underscore names under DROP_HEADER. */
    size_t dropped_trailers;
    uint64_t body_bytes; /* data bytes delivered so far */
    lg_http1_error_t error;

    lg_http1_options_t _opts;
    size_t _trailers_cap;
    bool _is_response;
    unsigned char _state;
    unsigned char _hex_digits;
    uint64_t _size;       /* chunk-size being read, then bytes left in the chunk */
    uint64_t _overhead;   /* framing bytes so far */
    size_t _ext_bytes;    /* extension bytes on the current size line */
    size_t _trailer_seen; /* trailer bytes already checked (they stay in the caller's buffer) */
    lg__http1_field_scan_t _trailer_scan;
} lg_http1_chunked_decoder_t;

/**
 * Prepares `d` for one chunked body.
 * @param opts          limits (copied): max_chunk_ext_bytes, and max_header_bytes /
 *                      max_header_count for the trailer section; underscore policy for requests.
 * @param is_response   upstream response body (errors answer 502, underscore policy not applied).
 * @param trailers      caller storage for trailer fields, kept until the trailers are used; at
 *                      most min(trailers_cap, opts->max_header_count) fields are accepted.
 */
void lg_http1_chunked_decoder_init(lg_http1_chunked_decoder_t *d, const lg_http1_options_t *opts,
                                   bool is_response, lg_http1_header_t *trailers,
                                   size_t trailers_cap);

/**
 * Decodes from `buf`. Call again with the bytes after `*consumed` until NEED_MORE, DONE or ERROR.
 *
 * @param consumed  bytes of `buf` the caller may now drop. Less than `len` only when NEED_MORE is
 *                  returned inside the trailer section or DONE is returned: then the bytes from
 *                  `*consumed` on must be given again at the start of the next call, followed by
 *                  new ones (the trailer section is sliced in place once complete, as the head
 *                  is); after DONE they are the next message.
 * @param data      set on DATA: body bytes inside buf[0 .. *consumed).
 * @return DATA (one slice per call), NEED_MORE, DONE (trailers in d->trailers, valid while the
 *         buffer given to this call is), or ERROR (d->error: code, status 400/431 for requests or
 *         502 for responses, offset relative to `buf`). After DONE or ERROR the decoder keeps
 *         returning the same status and consumes nothing.
 */
lg_http1_chunked_status_t lg_http1_chunked_decode(lg_http1_chunked_decoder_t *d, const char *buf,
                                                  size_t len, size_t *consumed,
                                                  lg_http1_slice_t *data);

/**
 * Writes the chunk-size line for a chunk of `size` (> 0) bytes: lower-case hex and CRLF, no NUL.
 * `buf` holds at least LG_HTTP1_CHUNK_SIZE_LINE_MAX bytes. The data and a CRLF follow it.
 * @return the bytes written.
 */
size_t lg_http1_chunked_encode_size(char *buf, uint64_t size);

/**
 * The bytes lg_http1_chunked_encode_last needs for these trailers.
 */
size_t lg_http1_chunked_last_len(const lg_http1_header_t *trailers, size_t num_trailers);

/**
 * Writes the last chunk, the trailer fields ("name: value" CRLF each) and the final CRLF.
 * Refuses a trailer whose name is not a token or whose value has CR, LF, NUL or another CTL, so
 * nothing can be injected into the framing.
 * @return the bytes written, or 0 when `cap` is too small or a trailer is refused.
 */
size_t lg_http1_chunked_encode_last(char *buf, size_t cap, const lg_http1_header_t *trailers,
                                    size_t num_trailers);

#endif
