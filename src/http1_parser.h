/*
 * HTTP/1.1 message heads: strict parsing of request and response heads into slices of the
 * caller's buffer, with the framing decision (Content-Length, chunked, close-delimited, tunnel)
 * and the connection semantics (keep-alive, Expect: 100-continue, Upgrade) derived from them.
 *
 * picohttpparser (exported by libh2o-evloop, no header shipped by Debian) does the slicing; on top
 * of it every head is re-checked byte by byte against RFC 9112, because the 2018 picohttpparser
 * accepts obs-fold, bare LF, methods that are not tokens and other request-smuggling material.
 * Every rejection carries a named code, the status Envoy would answer and Envoy's response-code
 * detail ("http1.codec_error", "http1.invalid_characters", ...).
 *
 * Not for: I/O, buffering, body bytes (see http1_chunked.h for chunked bodies), header
 * rewriting or serialisation, path normalisation. Everything here is a pure function over bytes
 * and may be called from any thread.
 */
#ifndef LG_HTTP1_PARSER_H
#define LG_HTTP1_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * picohttpparser as exported by libh2o-evloop 2.2.5 (layout: research/architecture-notes.md §0.1).
 * Each returns the length of the head (> 0), -1 on a parse error or -2 when more bytes are needed.
 * `num_headers` is in/out: the capacity of `headers` on entry, the count on return. Only legate's
 * wrappers below should call these: on their own they are not strict enough for untrusted input.
 * phr_decode_chunked is deliberately not declared (see http1_chunked.h).
 * ------------------------------------------------------------------------------------------- */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status,
                       const char **msg, size_t *msg_len, struct phr_header *headers,
                       size_t *num_headers, size_t last_len);
int phr_parse_headers(const char *buf, size_t len, struct phr_header *headers,
                      size_t *num_headers, size_t last_len);

/* ---------------------------------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------------------------------- */

/* One header field: name and value point into the parsed buffer (not NUL-terminated), the value
 * without surrounding whitespace. It is picohttpparser's own struct so that the parser fills the
 * caller's array directly, without a copy. */
typedef struct phr_header lg_http1_header_t;

/* A byte range inside the parsed buffer (or a static string where a field says so). */
typedef struct st_lg_http1_slice_t {
    const char *base;
    size_t len;
} lg_http1_slice_t;

#define LG_HTTP1_DEFAULT_MAX_HEADER_BYTES (60 * 1024) /* Envoy's max_request_headers_kb */
#define LG_HTTP1_DEFAULT_MAX_HEADER_COUNT 100         /* Envoy's max_headers_count */
#define LG_HTTP1_DEFAULT_MAX_CHUNK_EXT_BYTES 1024     /* per chunk-size line */

/* Envoy's HttpProtocolOptions.HeadersWithUnderscoresAction, same numbering. */
typedef enum en_lg_http1_underscores_t {
    LG_HTTP1_UNDERSCORES_ALLOW = 0,
    LG_HTTP1_UNDERSCORES_REJECT_REQUEST = 1,
    LG_HTTP1_UNDERSCORES_DROP_HEADER = 2,
} lg_http1_underscores_t;

/* Limits and policies, built once from config (lg_http1_options_init gives the defaults). */
typedef struct st_lg_http1_options_t {
    /* Whole head (start line, fields, line ends) or trailer section, in bytes; past it: 431. */
    size_t max_header_bytes;
    /* Field lines in a head or trailer section; past it: 431. */
    size_t max_header_count;
    /* Applied to request heads and request trailers only: Envoy leaves responses alone. */
    lg_http1_underscores_t headers_with_underscores;
    /* RFC 9112 §2.2 lets a recipient accept a bare LF as a line end; off by default. Never
     * applies inside chunked framing, where a bare LF is always rejected. */
    bool allow_bare_lf;
    /* Envoy's http_protocol_options.accept_http_10: off answers HTTP/1.0 requests 426. */
    bool accept_http_10;
    /* Chunk extensions are ignored; their bytes per chunk-size line are bounded by this. */
    size_t max_chunk_ext_bytes;
} lg_http1_options_t;

/*
 * Every reason a head or a chunked body is rejected: X(name, status, details, message).
 * The status is the one answered to a client for a bad request; an upstream response rejected
 * for the same reason is answered 502 instead (lg_http1_error_t.status says which applies).
 * Transfer-Encoding decision (RFC 9112 §6.1, Envoy answers 501 for anything but "chunked"):
 * a well-formed list of registered codings legate does not decode (gzip, x-gzip, deflate,
 * compress, x-compress), with or without a final "chunked", is 501; anything else that is not
 * exactly "chunked" (unknown tokens such as "xchunked" or "identity", "chunked" not last or
 * twice, empty elements, parameters, two Transfer-Encoding lines, HTTP/1.0) is 400, because those
 * are the shapes request smuggling uses.
 */
#define LG_HTTP1_ERRORS(X)                                                                         \
    X(NONE, 0, "", "no error")                                                                     \
    X(CODEC_ERROR, 400, "http1.codec_error", "malformed message")                                  \
    X(HEADERS_TOO_LARGE, 431, "http1.headers_too_large", "header section too large")               \
    X(TOO_MANY_HEADERS, 431, "http1.too_many_headers", "too many header fields")                   \
    X(BAD_REQUEST_LINE, 400, "http1.codec_error", "malformed request line")                        \
    X(INVALID_METHOD, 400, "http1.codec_error", "method is not a token")                           \
    X(INVALID_TARGET, 400, "http1.codec_error", "invalid character in request-target")             \
    X(INVALID_URL, 400, "http1.invalid_url", "request-target not valid for the method")            \
    X(INVALID_SCHEME, 400, "http1.invalid_scheme", "absolute-form scheme is not http or https")    \
    X(BAD_VERSION, 400, "http1.codec_error", "malformed HTTP version")                             \
    X(VERSION_NOT_SUPPORTED, 505, "http1.codec_error", "HTTP version not supported")               \
    X(HTTP10_NOT_ALLOWED, 426, "low_version", "HTTP/1.0 not accepted")                             \
    X(BAD_STATUS_LINE, 400, "http1.codec_error", "malformed status line")                          \
    X(BARE_CR, 400, "http1.codec_error", "CR not followed by LF")                                  \
    X(BARE_LF, 400, "http1.codec_error", "LF not preceded by CR")                                  \
    X(OBS_FOLD, 400, "http1.codec_error", "obsolete line folding")                                 \
    X(EMPTY_HEADER_NAME, 400, "http1.codec_error", "empty header name")                            \
    X(WHITESPACE_BEFORE_COLON, 400, "http1.codec_error", "whitespace in or after a header name")   \
    X(MISSING_COLON, 400, "http1.codec_error", "header line without a colon")                      \
    X(INVALID_HEADER_NAME, 400, "http1.invalid_characters", "invalid character in header name")    \
    X(INVALID_HEADER_VALUE, 400, "http1.invalid_characters", "invalid character in header value")  \
    X(UNDERSCORE_IN_HEADER, 400, "http1.unexpected_underscore", "header name with underscore")     \
    X(MISSING_HOST, 400, "missing_host_header", "missing or empty Host header")                    \
    X(MULTIPLE_HOST, 400, "http.invalid_authority", "more than one Host header")                   \
    X(INVALID_HOST, 400, "http.invalid_authority", "invalid Host header")                          \
    X(INVALID_CONTENT_LENGTH, 400, "http1.codec_error", "invalid Content-Length")                  \
    X(CONFLICTING_CONTENT_LENGTH, 400, "http1.codec_error", "differing Content-Lengths")           \
    X(CONTENT_LENGTH_AND_CHUNKED, 400, "http1.content_length_and_chunked_not_allowed",             \
      "both Content-Length and Transfer-Encoding")                                                 \
    X(INVALID_TRANSFER_ENCODING, 400, "http1.invalid_transfer_encoding",                           \
      "malformed or ambiguous Transfer-Encoding")                                                  \
    X(UNSUPPORTED_TRANSFER_ENCODING, 501, "http1.invalid_transfer_encoding",                       \
      "unsupported transfer coding")                                                               \
    X(BODY_DISALLOWED, 400, "http1.body_disallowed", "message cannot carry a body")                \
    X(INVALID_CHUNK_SIZE, 400, "http1.codec_error", "invalid chunk size")                          \
    X(CHUNK_SIZE_TOO_LARGE, 400, "http1.codec_error", "chunk size too large")                      \
    X(INVALID_CHUNK_EXT, 400, "http1.codec_error", "invalid chunk extension")                      \
    X(CHUNK_EXT_TOO_LONG, 400, "http1.codec_error", "chunk extension too long")                    \
    X(MISSING_CHUNK_CRLF, 400, "http1.codec_error", "chunk data not followed by CRLF")             \
    X(CHUNK_OVERHEAD, 400, "http1.codec_error", "chunked framing overhead too large")              \
    X(TRAILERS_TOO_LARGE, 431, "http1.headers_too_large", "trailer section too large")             \
    X(TOO_MANY_TRAILERS, 431, "http1.too_many_headers", "too many trailer fields")

typedef enum en_lg_http1_error_code_t {
#define LG_HTTP1_ERROR_ENUM_(name, status, details, message) LG_HTTP1_ERR_##name,
    LG_HTTP1_ERRORS(LG_HTTP1_ERROR_ENUM_)
#undef LG_HTTP1_ERROR_ENUM_
        LG_HTTP1_ERR__COUNT
} lg_http1_error_code_t;

/* Why a message was rejected. All strings are static. */
typedef struct st_lg_http1_error_t {
    lg_http1_error_code_t code;
    int status;          /* to answer: the table's status for requests, 502 for responses */
    const char *details; /* Envoy response-code details, for %RESPONSE_CODE_DETAILS% */
    const char *message; /* short human-readable reason, for logs */
    size_t offset;       /* where in the buffer the problem was seen (best effort) */
} lg_http1_error_t;

/* How the body of a message is delimited. */
typedef enum en_lg_http1_body_t {
    LG_HTTP1_BODY_NONE = 0,        /* the message ends with its head */
    LG_HTTP1_BODY_CONTENT_LENGTH,  /* exactly content_length (> 0) bytes follow */
    LG_HTTP1_BODY_CHUNKED,         /* chunked: feed the bytes to http1_chunked.h */
    LG_HTTP1_BODY_CLOSE_DELIMITED, /* responses only: the body ends when the connection closes */
    LG_HTTP1_BODY_TUNNEL,          /* responses only: 101, or 2xx to CONNECT: raw bytes follow */
} lg_http1_body_t;

typedef enum en_lg_http1_target_form_t {
    LG_HTTP1_TARGET_ORIGIN = 0, /* "/path?query" */
    LG_HTTP1_TARGET_ABSOLUTE,   /* "http://authority/path?query" */
    LG_HTTP1_TARGET_AUTHORITY,  /* "host:port", CONNECT only */
    LG_HTTP1_TARGET_ASTERISK,   /* "*", OPTIONS only */
} lg_http1_target_form_t;

/* A parsed request head. Slices point into the buffer given to lg_http1_parse_request. */
typedef struct st_lg_http1_request_t {
    lg_http1_slice_t method;
    lg_http1_slice_t target; /* the request-target as received */
    lg_http1_target_form_t target_form;
    lg_http1_slice_t scheme; /* absolute-form only, as received (either case), else empty */
    /* Where the request goes: the absolute-form or CONNECT authority, else the Host value
     * (empty only for an HTTP/1.0 request without Host). */
    lg_http1_slice_t authority;
    /* Origin-form: the target. Absolute-form: what follows the authority, which may be empty or
     * start with '?' (then "/" is meant before it). Asterisk-form: "*". CONNECT: empty. */
    lg_http1_slice_t path;
    lg_http1_slice_t host; /* the Host header's value, empty when absent */
    int minor_version;     /* 0 or 1 */
    lg_http1_header_t *headers;
    size_t num_headers;
    size_t dropped_headers; /* removed by LG_HTTP1_UNDERSCORES_DROP_HEADER, for the stat */
    lg_http1_body_t body;   /* NONE, CONTENT_LENGTH or CHUNKED */
    bool has_content_length;
    uint64_t content_length; /* valid when has_content_length */
    bool keep_alive;         /* the connection may carry another request after this one */
    bool expect_continue;    /* HTTP/1.1 with "Expect: 100-continue" */
    bool upgrade;            /* an Upgrade header nominated in Connection */
    bool is_connect;         /* CONNECT: bytes after the head are a tunnel once answered 2xx */
    bool is_head;            /* HEAD: the response has no body whatever it says */
    size_t head_len;
} lg_http1_request_t;

/* What the response answers; it decides the body framing (RFC 9112 §6.3). */
#define LG_HTTP1_REQ_HEAD 0x1    /* the request was HEAD */
#define LG_HTTP1_REQ_CONNECT 0x2 /* the request was CONNECT */

/* A parsed response head. Slices point into the buffer given to lg_http1_parse_response. */
typedef struct st_lg_http1_response_t {
    int minor_version; /* 0 or 1 */
    int status;        /* 100..599 */
    lg_http1_slice_t reason;
    lg_http1_header_t *headers;
    size_t num_headers;
    lg_http1_body_t body;
    bool has_content_length;
    uint64_t content_length;
    bool keep_alive;  /* the upstream connection may be reused after this response */
    bool is_interim;  /* 1xx other than 101: a final response follows on the same connection */
    size_t head_len;
} lg_http1_response_t;

/* ---------------------------------------------------------------------------------------------
 * Functions.
 * ------------------------------------------------------------------------------------------- */

/** Fills `opts` with Envoy's defaults (60 KiB, 100 headers, ALLOW, no bare LF, no HTTP/1.0). */
void lg_http1_options_init(lg_http1_options_t *opts);

/**
 * Parses and validates a request head at the start of `buf`.
 *
 * @param opts      limits and policies; read only.
 * @param buf, len  bytes received so far (may hold body bytes or further pipelined requests).
 * @param last_len  `len` of the previous call on the same head that returned -2, else 0: only
 *                  the new bytes are searched for the end of the head, so a head arriving one
 *                  byte at a time costs linear time.
 * @param req       filled on success; its slices point into `buf`, so `buf` must outlive them.
 * @param headers   caller storage for the header fields; at most min(headers_cap,
 *                  opts->max_header_count) fields are accepted, more is 431.
 * @param err       filled when -1 is returned.
 * @return the head length (> 0; the body or the next request starts there), -2 when the head is
 *         incomplete and within limits, -1 when the request must be rejected: answer
 *         err->status with err->details, then close the connection.
 * Thread: any; no allocation, no global state.
 */
int lg_http1_parse_request(const lg_http1_options_t *opts, const char *buf, size_t len,
                           size_t last_len, lg_http1_request_t *req, lg_http1_header_t *headers,
                           size_t headers_cap, lg_http1_error_t *err);

/**
 * Parses and validates an upstream response head at the start of `buf`.
 *
 * Same contract as lg_http1_parse_request; `request_flags` (LG_HTTP1_REQ_*) says what the
 * response answers. Any -1 means the upstream connection is unusable: answer the client 502
 * (err->status) and close the upstream connection. A 1xx other than 101 comes back with
 * is_interim set and no body; parse the final response after it.
 */
int lg_http1_parse_response(const lg_http1_options_t *opts, const char *buf, size_t len,
                            size_t last_len, unsigned request_flags, lg_http1_response_t *resp,
                            lg_http1_header_t *headers, size_t headers_cap, lg_http1_error_t *err);

/** Envoy's status, details and message for a code, as a filled error (status as for requests). */
void lg_http1_error_set(lg_http1_error_t *err, lg_http1_error_code_t code, size_t offset);

/** The code's name as in the enum without its prefix ("BARE_CR"), static; "?" if out of range. */
const char *lg_http1_error_name(lg_http1_error_code_t code);

/** True when `name` is a non-empty RFC 9110 token (a valid field name). */
bool lg_http1_field_name_valid(const char *name, size_t len);

/** True when `value` has only field-vchar, SP and HTAB (no CTL, no CR/LF/NUL, no DEL). */
bool lg_http1_field_value_valid(const char *value, size_t len);

/**
 * True when `s` is a valid authority without userinfo: reg-name, IPv4 or "[IPv6]", then an
 * optional ":port" (0..65535); `require_port` makes the port mandatory (CONNECT targets).
 */
bool lg_http1_authority_valid(const char *s, size_t len, bool require_port);

/** Case-insensitive comparison of a slice with a lower-case NUL-terminated literal. */
bool lg_http1_token_eq(const char *s, size_t len, const char *lower_literal);

/* ---------------------------------------------------------------------------------------------
 * Internal (lg__): the strict, incremental field-section scanner shared with http1_chunked.c.
 * ------------------------------------------------------------------------------------------- */
typedef struct st_lg__http1_field_scan_t {
    unsigned char _state;
    size_t _count;
} lg__http1_field_scan_t;

/**
 * Checks field lines (and the empty line ending them) byte by byte, resumable at any split.
 * @return 1 when the empty line was reached (`*scanned` includes it), 0 when all of `buf` was
 *         checked and more is needed, -1 on a violation (err filled, offset relative to `buf`).
 */
int lg__http1_field_scan(lg__http1_field_scan_t *scan, const lg_http1_options_t *opts,
                         size_t max_count, bool trailers, const char *buf, size_t len,
                         size_t *scanned, lg_http1_error_t *err);

/**
 * Post-processing shared by heads and trailers: trims trailing whitespace from values and
 * applies the underscore policy (when `apply_underscores`); compacts `headers`.
 * @return 0, or -1 with err filled (REJECT_REQUEST).
 */
int lg__http1_fields_finish(const lg_http1_options_t *opts, bool apply_underscores,
                            lg_http1_header_t *headers, size_t *num_headers, size_t *dropped,
                            lg_http1_error_t *err);

#endif
