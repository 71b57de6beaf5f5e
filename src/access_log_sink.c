/*
 * Access-log sinks and their writer thread: see access_log_sink.h.
 *
 * A ring is a byte array with two ever-growing counters: `head` (bytes appended, stored by its one
 * producer with release order after the bytes) and `tail` (bytes written out, stored by the writer
 * after write(2) returned). The producer owns [head, tail + size), the writer owns [tail, head);
 * neither ever waits for the other. The registry of sinks (a list under one mutex) is touched by
 * the main thread when loggers are built or freed and by the writer once per pass, never by a
 * worker writing a record.
 */
#include "access_log_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"

typedef struct st_ring_t {
    _Alignas(64) _Atomic size_t head; /* bytes ever appended; stored by the producer only */
    _Alignas(64) _Atomic size_t tail; /* bytes ever written out; stored by the writer only */
    _Alignas(64) char data[LG_ACCESS_LOG_SINK_RING_BYTES];
} ring_t;

struct st_lg_access_log_sink_t {
    char *path;
    int fd;
    int std_fd;       /* 1 or 2 when the sink is the process's stdout/stderr */
    size_t refs;      /* guarded by writer.lock: loggers, plus the writer while it drains */
    int error_logged; /* writer side: a failed write was reported */
    lg_access_log_sink_t *next;
    _Atomic(ring_t *) rings[LG_ACCESS_LOG_MAX_THREADS];
};

/* The one writer of the process, like Envoy's access log manager; state shared by all sinks. */
static struct {
    pthread_mutex_t lock;
    lg_access_log_sink_t *live; /* open sinks, by path */
    lg_access_log_sink_t *dead; /* released; the writer drains and closes them */
    pthread_t thread;
    int running, stop;          /* guarded by lock */
    _Atomic int wake_fd;        /* eventfd the writer polls; -1 when not running */
    _Atomic uint64_t flush_ms;
    _Atomic int reopen;
    _Atomic uint64_t dropped;
    uint64_t dropped_reported;  /* writer side */
} writer = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake_fd = -1,
    .flush_ms = LG_ACCESS_LOG_DEFAULT_FLUSH_MS,
};

static void wake_writer(void)
{
    int fd = atomic_load_explicit(&writer.wake_fd, memory_order_acquire);
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already non-zero, the writer will wake anyway. */
    }
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static size_t count_records(const char *p, size_t len)
{
    size_t n = 0;
    for (const char *e = p + len; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; ++p)
        ++n;
    return n != 0 ? n : 1;
}

/* Writes `iov` (whole records) to the sink's descriptor; gives up, counting the records as dropped,
 * when the descriptor fails or stays unwritable for a second. Writer (or flushing) thread. */
static void write_all(lg_access_log_sink_t *s, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = writev(s->fd, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {s->fd, POLLOUT, 0};
                if (poll(&p, 1, 1000) > 0)
                    continue;
            }
            if (!s->error_logged) {
                lg_err(main, "access log \"%s\": write failed: %s; records are dropped", s->path, strerror(errno));
                s->error_logged = 1;
            }
            size_t lost = 0;
            for (int i = 0; i < iovcnt; ++i)
                lost += count_records(iov[i].iov_base, iov[i].iov_len);
            atomic_fetch_add_explicit(&writer.dropped, lost, memory_order_relaxed);
            return;
        }
        s->error_logged = 0;
        size_t done = (size_t)n;
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            ++iov;
            --iovcnt;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
}

/* Writes out what every ring of the sink holds. One thread at a time per sink. */
static void drain(lg_access_log_sink_t *s)
{
    for (size_t i = 0; i < LG_ACCESS_LOG_MAX_THREADS; ++i) {
        ring_t *r = atomic_load_explicit(&s->rings[i], memory_order_acquire);
        if (r == NULL)
            continue;
        size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
        if (h == t)
            continue;
        size_t off = t % LG_ACCESS_LOG_SINK_RING_BYTES, len = h - t;
        size_t first = len < LG_ACCESS_LOG_SINK_RING_BYTES - off ? len : LG_ACCESS_LOG_SINK_RING_BYTES - off;
        struct iovec iov[2] = {{r->data + off, first}, {r->data, len - first}};
        write_all(s, iov, len > first ? 2 : 1);
        atomic_store_explicit(&r->tail, h, memory_order_release);
    }
}

static void destroy(lg_access_log_sink_t *s)
{
    for (size_t i = 0; i < LG_ACCESS_LOG_MAX_THREADS; ++i)
        free(atomic_load_explicit(&s->rings[i], memory_order_relaxed));
    if (!s->std_fd && s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
}

static void reopen_sink(lg_access_log_sink_t *s)
{
    if (s->std_fd)
        return;
    int fd = open_path(s->path);
    if (fd < 0) {
        lg_err(main, "access log \"%s\": reopen failed: %s; still writing the old file", s->path, strerror(errno));
        return;
    }
    close(s->fd);
    s->fd = fd;
}

/* Unlinks a sink from the live list. Called with the lock held. */
static void unlink_live(lg_access_log_sink_t *s)
{
    for (lg_access_log_sink_t **p = &writer.live; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    s->next = NULL;
}

static void report_drops(void)
{
    uint64_t d = atomic_load_explicit(&writer.dropped, memory_order_relaxed);
    if (d != writer.dropped_reported) {
        lg_warn(main, "access logs: %llu records dropped so far (buffers full or writes failing)",
                (unsigned long long)d);
        writer.dropped_reported = d;
    }
}

/* One pass of the writer: reopen if asked, drain every sink, close released ones. Returns the stop
 * flag as it was when the pass began. */
static int writer_pass(void)
{
    pthread_mutex_lock(&writer.lock);
    int stop = writer.stop;
    int reopen = atomic_exchange(&writer.reopen, 0);
    size_t n = 0;
    for (lg_access_log_sink_t *s = writer.live; s != NULL; s = s->next)
        ++n;
    lg_access_log_sink_t **held = malloc((n != 0 ? n : 1) * sizeof(*held));
    if (held == NULL)
        lg_fatal("out of memory");
    n = 0;
    for (lg_access_log_sink_t *s = writer.live; s != NULL; s = s->next) {
        ++s->refs;
        held[n++] = s;
    }
    lg_access_log_sink_t *dead = writer.dead;
    writer.dead = NULL;
    pthread_mutex_unlock(&writer.lock);

    for (size_t i = 0; i < n; ++i) {
        if (reopen)
            reopen_sink(held[i]);
        drain(held[i]);
    }
    while (dead != NULL) {
        lg_access_log_sink_t *next = dead->next;
        drain(dead);
        destroy(dead);
        dead = next;
    }

    lg_access_log_sink_t *gone = NULL;
    pthread_mutex_lock(&writer.lock);
    for (size_t i = 0; i < n; ++i) {
        if (--held[i]->refs == 0) { /* released while we drained it */
            unlink_live(held[i]);
            held[i]->next = gone;
            gone = held[i];
        }
    }
    pthread_mutex_unlock(&writer.lock);
    while (gone != NULL) {
        lg_access_log_sink_t *next = gone->next;
        drain(gone);
        destroy(gone);
        gone = next;
    }
    free(held);
    report_drops();
    return stop;
}

static void *writer_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p = {atomic_load(&writer.wake_fd), POLLIN, 0};
        uint64_t ms = atomic_load_explicit(&writer.flush_ms, memory_order_relaxed);
        int r = poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);
        uint64_t v;
        if (r > 0 && (p.revents & POLLIN) && read(p.fd, &v, sizeof(v)) < 0) {
            /* EAGAIN: another pass consumed it */
        }
        if (writer_pass())
            return NULL;
    }
}

/* Starts the writer. Called with the lock held. */
static int start_writer(void)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return -1;
    atomic_store(&writer.wake_fd, efd);
    writer.stop = 0;
    /* The writer takes no signal: SIGUSR1, SIGTERM... belong to the main loop. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&writer.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        atomic_store(&writer.wake_fd, -1);
        close(efd);
        errno = r;
        return -1;
    }
    writer.running = 1;
    return 0;
}

lg_access_log_sink_t *lg_access_log_sink_open(const char *path, lg_error_t *err)
{
    if (path == NULL || *path == '\0')
        return lg_error_set(err, "access log path is empty"), NULL;
    pthread_mutex_lock(&writer.lock);
    lg_access_log_sink_t *s;
    for (s = writer.live; s != NULL; s = s->next) {
        if (strcmp(s->path, path) == 0) {
            ++s->refs;
            pthread_mutex_unlock(&writer.lock);
            return s;
        }
    }
    int std_fd = strcmp(path, "/dev/stdout") == 0 ? 1 : strcmp(path, "/dev/stderr") == 0 ? 2 : 0;
    int fd = std_fd ? std_fd : open_path(path);
    if (fd < 0) {
        lg_error_set(err, "cannot open access log \"%s\": %s", path, strerror(errno));
        pthread_mutex_unlock(&writer.lock);
        return NULL;
    }
    if (!writer.running && start_writer() != 0) {
        lg_error_set(err, "cannot start the access log writer: %s", strerror(errno));
        if (!std_fd)
            close(fd);
        pthread_mutex_unlock(&writer.lock);
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL)
        lg_fatal("out of memory");
    s->fd = fd;
    s->std_fd = std_fd;
    s->refs = 1;
    for (size_t i = 0; i < LG_ACCESS_LOG_MAX_THREADS; ++i)
        atomic_init(&s->rings[i], NULL);
    s->next = writer.live;
    writer.live = s;
    pthread_mutex_unlock(&writer.lock);
    return s;
}

void lg_access_log_sink_release(lg_access_log_sink_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&writer.lock);
    if (--s->refs != 0) {
        pthread_mutex_unlock(&writer.lock);
        return;
    }
    unlink_live(s);
    if (writer.running) {
        s->next = writer.dead;
        writer.dead = s;
        pthread_mutex_unlock(&writer.lock);
        wake_writer();
        return;
    }
    pthread_mutex_unlock(&writer.lock);
    drain(s);
    destroy(s);
}

int lg_access_log_sink_write(lg_access_log_sink_t *s, unsigned thread_id, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (thread_id >= LG_ACCESS_LOG_MAX_THREADS || len > LG_ACCESS_LOG_SINK_RING_BYTES) {
        atomic_fetch_add_explicit(&writer.dropped, 1, memory_order_relaxed);
        return -1;
    }
    ring_t *r = atomic_load_explicit(&s->rings[thread_id], memory_order_acquire);
    if (r == NULL) {
        if ((r = aligned_alloc(64, sizeof(*r))) == NULL)
            lg_fatal("out of memory");
        atomic_init(&r->head, 0);
        atomic_init(&r->tail, 0);
        atomic_store_explicit(&s->rings[thread_id], r, memory_order_release);
    }
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t used = h - t;
    if (len > LG_ACCESS_LOG_SINK_RING_BYTES - used) {
        atomic_fetch_add_explicit(&writer.dropped, 1, memory_order_relaxed);
        return -1;
    }
    size_t off = h % LG_ACCESS_LOG_SINK_RING_BYTES;
    size_t first = len < LG_ACCESS_LOG_SINK_RING_BYTES - off ? len : LG_ACCESS_LOG_SINK_RING_BYTES - off;
    memcpy(r->data + off, data, first);
    memcpy(r->data, data + first, len - first);
    atomic_store_explicit(&r->head, h + len, memory_order_release);
    if (used < LG_ACCESS_LOG_SINK_FLUSH_BYTES && used + len >= LG_ACCESS_LOG_SINK_FLUSH_BYTES)
        wake_writer();
    return 0;
}

const char *lg_access_log_sink_path(const lg_access_log_sink_t *s)
{
    return s->path;
}

void lg_access_log_sink_set_flush_interval(uint64_t ms)
{
    atomic_store(&writer.flush_ms, ms != 0 ? ms : LG_ACCESS_LOG_DEFAULT_FLUSH_MS);
    wake_writer(); /* the next poll uses the new interval */
}

void lg_access_log_sink_reopen(void)
{
    atomic_store(&writer.reopen, 1);
    wake_writer();
}

void lg_access_log_sink_flush_all(void)
{
    pthread_mutex_lock(&writer.lock);
    int running = writer.running;
    if (running)
        writer.stop = 1;
    pthread_mutex_unlock(&writer.lock);
    if (running) {
        wake_writer();
        pthread_join(writer.thread, NULL);
        pthread_mutex_lock(&writer.lock);
        writer.running = 0;
        int fd = atomic_exchange(&writer.wake_fd, -1);
        pthread_mutex_unlock(&writer.lock);
        close(fd);
    }
    /* What was appended after the writer's last pass, and sinks released meanwhile. */
    pthread_mutex_lock(&writer.lock);
    if (atomic_exchange(&writer.reopen, 0))
        for (lg_access_log_sink_t *s = writer.live; s != NULL; s = s->next)
            reopen_sink(s);
    for (lg_access_log_sink_t *s = writer.live; s != NULL; s = s->next)
        drain(s);
    lg_access_log_sink_t *dead = writer.dead;
    writer.dead = NULL;
    pthread_mutex_unlock(&writer.lock);
    while (dead != NULL) {
        lg_access_log_sink_t *next = dead->next;
        drain(dead);
        destroy(dead);
        dead = next;
    }
}

uint64_t lg_access_log_sink_dropped(void)
{
    return atomic_load_explicit(&writer.dropped, memory_order_relaxed);
}
