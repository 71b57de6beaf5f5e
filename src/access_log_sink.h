/*
 * Where access-log records go: files (and the process's stdout/stderr), written so that a worker
 * never waits on a disk or a pipe and never takes a lock per record.
 *
 * Every sink has one buffer per writing thread (a single-producer, single-consumer byte ring,
 * created on the thread's first record). A worker appends whole records to its own ring and
 * returns; one writer thread, shared by all sinks, moves the bytes to the file with write(2) on an
 * O_APPEND descriptor: every flush interval (1 s unless set), or at once when a ring holds more than
 * LG_ACCESS_LOG_SINK_FLUSH_BYTES. A record is copied whole or not at all, so records of different
 * workers never interleave. When a ring is full (the disk or pipe cannot keep up) the record is
 * dropped and counted, never waited for. lg_access_log_sink_reopen (SIGUSR1) makes the writer reopen
 * every file by path, for log rotation.
 *
 * Sinks are shared by path: every logger of a snapshot, and the next snapshot's loggers, that name
 * the same file share one descriptor, so a config reload neither reopens nor reorders the file.
 *
 * Not for: formatting and filtering (access_log.c), process logs (log.c).
 */
#ifndef LG_ACCESS_LOG_SINK_H
#define LG_ACCESS_LOG_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Writer thread ids are below this: workers use their index, the main thread (admin) the last. */
#define LG_ACCESS_LOG_MAX_THREADS 256
#define LG_ACCESS_LOG_MAIN_THREAD (LG_ACCESS_LOG_MAX_THREADS - 1)
/* A ring holding this much wakes the writer before the interval ends (Envoy's 64 KiB). */
#define LG_ACCESS_LOG_SINK_FLUSH_BYTES (64 * 1024)
/* What one thread may have pending for one sink before records are dropped. */
#define LG_ACCESS_LOG_SINK_RING_BYTES (1024 * 1024)
#define LG_ACCESS_LOG_DEFAULT_FLUSH_MS 1000

typedef struct st_lg_access_log_sink_t lg_access_log_sink_t;

/**
 * Returns the sink for `path` with a new reference, opening the file (O_WRONLY | O_APPEND |
 * O_CREAT, mode 0644) when no sink has it yet. "/dev/stdout" and "/dev/stderr" are the process's
 * descriptors 1 and 2 (never reopened or closed). Starts the writer thread if it is not running.
 * Returns NULL with err filled ("cannot open access log \"/x/y\": No such file or directory").
 * Main thread.
 */
lg_access_log_sink_t *lg_access_log_sink_open(const char *path, lg_error_t *err);

/**
 * Drops a reference. The last one hands the sink to the writer thread, which writes what is still
 * buffered and closes it (or does so at once when the writer is not running). No thread may write
 * to the sink afterwards. Any thread.
 */
void lg_access_log_sink_release(lg_access_log_sink_t *s);

/**
 * Appends one record (`len` bytes, copied) to the ring of thread `thread_id`, which must be the
 * only thread writing with that id. Never blocks. Returns 0, or -1 when the record was dropped
 * (ring full, bad id), counted in lg_access_log_sink_dropped.
 */
int lg_access_log_sink_write(lg_access_log_sink_t *s, unsigned thread_id, const char *data, size_t len);

/** The path the sink was opened with. */
const char *lg_access_log_sink_path(const lg_access_log_sink_t *s);

/** Sets how often the writer flushes (ms, > 0). Main thread. */
void lg_access_log_sink_set_flush_interval(uint64_t ms);

/**
 * Asks the writer to reopen every file by its path (log rotation). Async-signal-safe: a SIGUSR1
 * handler may call it.
 */
void lg_access_log_sink_reopen(void);

/**
 * Stops the writer thread after it has written everything buffered, then writes whatever was
 * appended meanwhile and closes released sinks. Call when no worker writes any more (at exit, or
 * in tests); a later lg_access_log_sink_open starts the writer again. Main thread.
 */
void lg_access_log_sink_flush_all(void);

/** Records dropped since the start (full rings, bad thread ids, failed writes). Any thread. */
uint64_t lg_access_log_sink_dropped(void);

#endif
