/* SPDX-License-Identifier: MIT */
/*
 * stats_endpoint.h: where the endpoint lives, the thread that serves it,
 * and the four reports.
 *
 * The thread polls the listening socket, a wake-up pipe and at most
 * EP_MAX_CLIENTS clients, all non-blocking; one more client takes the slot
 * of the oldest that is not being answered.  A client goes through three
 * states: reading its request line (bounded in length and time), writing
 * the answer (as fast as it reads; bounded in time), then draining what it
 * still sends for a moment after our shutdown, so that a client which sent
 * more than one line (or garbage) still reads our answer instead of a reset.
 * Nothing a client does reaches the engine: the reports are built from
 * iocp_engine_stats() and iocp_engine_foreach_conn() snapshots.
 */
#include "stats_endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "diag.h"
#include "json.h"

#define EP_MAX_CLIENTS 32
#define EP_REQ_MAX     128   /* bytes of a request line, newline included */
#define EP_READ_MS     5000  /* to send the request line */
#define EP_WRITE_MS    10000 /* to read the whole answer */
#define EP_DRAIN_MS    1000  /* to close after our answer */
#define EP_RATE_MIN_MS 1000  /* a new rate sample at most this often */

enum ep_state { EP_READING, EP_WRITING, EP_DRAINING };

struct ep_client {
    int fd; /* -1: free slot */
    enum ep_state state;
    uint64_t since, deadline;
    char in[EP_REQ_MAX];
    size_t inlen;
    struct json_buf out;
    size_t outoff;
};

/* One sample of the counters that rates are computed from. */
struct ep_sample {
    uint64_t t_ms; /* engine uptime */
    uint64_t bytes_in, bytes_out, accepted, closed;
    uint64_t completions[IOCP_STATS_MAX_WORKERS];
};

static struct {
    bool running;
    struct iocp_engine *e;
    struct iocp_server *s;
    int lfd;
    int wake[2];
    pthread_t thread;
    bool is_unix;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
    struct ep_client clients[EP_MAX_CLIENTS];
    struct ep_sample base; /* the previous sample; zero (the start) at first */
} ep = {.lfd = -1, .wake = {-1, -1}};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the per-user directory ---- */

int stats_endpoint_dir(char *buf, size_t len, bool create, const char **why)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/iocptool", xdg);
    else
        n = snprintf(buf, len, "/tmp/iocptool-%lu", (unsigned long)geteuid());
    if (n < 0 || (size_t)n >= len) {
        *why = "path too long";
        errno = ENAMETOOLONG;
        return -1;
    }
    if (create && mkdir(buf, 0700) < 0 && errno != EEXIST) {
        *why = strerror(errno);
        return -1;
    }
    struct stat st;
    if (lstat(buf, &st) < 0) {
        *why = errno == ENOENT ? "no such directory" : strerror(errno);
        return -1;
    }
    /* /tmp is shared: someone else may have made the directory first, or
     * put a link there.  Use it only if it is ours and closed to others. */
    if (S_ISLNK(st.st_mode)) {
        *why = "is a symbolic link";
        errno = ELOOP;
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        *why = "not a directory";
        errno = ENOTDIR;
        return -1;
    }
    if (st.st_uid != geteuid()) {
        *why = "owned by another user";
        errno = EPERM;
        return -1;
    }
    if (st.st_mode & 077) {
        *why = "open to other users (mode must be 0700)";
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* ---- addresses ---- */

/* "tcp:[HOST:]PORT", "tcp:[v6]:PORT": host (default 127.0.0.1) and port. */
static bool parse_tcp(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *text = spec + 4;
    const char *p = text;
    snprintf(host, hostlen, "127.0.0.1");
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= hostlen)
            return false;
        snprintf(host, hostlen, "%.*s", (int)(close - text - 1), text + 1);
        p = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon) {
            if ((size_t)(colon - text) >= hostlen || colon == text)
                return false;
            snprintf(host, hostlen, "%.*s", (int)(colon - text), text);
            p = colon + 1;
        }
    }
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535)
        return false;
    snprintf(port, portlen, "%ld", v);
    return true;
}

static bool is_tcp(const char *spec)
{
    return strncmp(spec, "tcp:", 4) == 0;
}

static int resolve_tcp(const char *spec, struct addrinfo **res, bool passive, char *err,
                       size_t errlen)
{
    char host[256], port[8];
    if (!parse_tcp(spec, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
        return -1;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int gai = getaddrinfo(host, port, &hints, res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", spec, gai_strerror(gai));
        return -1;
    }
    return 0;
}

static bool fill_unix(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        snprintf(err, errlen, "%s: path too long for a Unix-domain socket (at most %zu bytes)",
                 path, sizeof sa->sun_path - 1);
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return true;
}

int stats_endpoint_connect(const char *spec, char *err, size_t errlen)
{
    if (is_tcp(spec)) {
        struct addrinfo *res;
        if (resolve_tcp(spec, &res, false, err, errlen) < 0)
            return -1;
        int fd = -1, saved = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
            saved = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
            snprintf(err, errlen, "%s: %s", spec, strerror(saved));
        return fd;
    }
    struct sockaddr_un sa;
    if (!fill_unix(&sa, spec, err, errlen))
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen, "%s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- opening the endpoint ---- */

/* Bind a Unix-domain socket at path with mode 0600.  A stale socket file
 * (nobody accepts on it) is replaced; anything else there is an error. */
static int open_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (!fill_unix(&sa, path, err, errlen))
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a socket", path);
            return -1;
        }
        char ignored[64];
        int probe = stats_endpoint_connect(path, ignored, sizeof ignored);
        if (probe >= 0) {
            close(probe);
            snprintf(err, errlen, "%s: in use by another process", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* The mode comes from the umask at bind time; 0177 leaves 0600.  The
     * umask is per process, but no other thread creates files meanwhile. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int saved = errno;
    umask(old);
    if (rc == 0 && (chmod(path, 0600) < 0 || lstat(path, &st) < 0))
        rc = -1, saved = errno;
    if (rc == 0 && listen(fd, 64) < 0)
        rc = -1, saved = errno;
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        close(fd);
        return -1;
    }
    ep.is_unix = true;
    memcpy(ep.path, sa.sun_path, sizeof ep.path);
    ep.dev = st.st_dev;
    ep.ino = st.st_ino;
    diag_info(1, "stats endpoint unix %s", path);
    return fd;
}

static int open_tcp(const char *spec, char *err, size_t errlen)
{
    struct addrinfo *res;
    if (resolve_tcp(spec, &res, true, err, errlen) < 0)
        return -1;
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", spec, strerror(saved));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    diag_info(1, "stats endpoint tcp %s %s", host, port);
    return fd;
}

/* ---- reports ---- */

static const char *const op_names[IOCP_STAT_OPS] = {
    "accept", "connect", "recv", "send", "read", "write", "post",
};

struct ep_report {
    struct iocp_stats st;
    struct ep_sample now;
    uint64_t interval_ms; /* what the rates cover */
    bool since_start;
    double in_rate, out_rate, accept_rate, close_rate;
    double completion_rate[IOCP_STATS_MAX_WORKERS];
    uint64_t pool_total;
    char listening[80];
    uint32_t server_conns;
};

static double per_second(uint64_t now, uint64_t then, uint64_t ms)
{
    return ms ? (double)(now - then) * 1000.0 / (double)ms : 0.0;
}

/* Take a snapshot and the rates since the previous sample (see the header
 * for the rule); with advance, this snapshot becomes the next baseline when
 * the baseline is old enough. */
static void take_report(struct ep_report *r, bool advance)
{
    memset(r, 0, sizeof *r);
    iocp_engine_stats(ep.e, &r->st, true);
    const struct iocp_stats *st = &r->st;
    unsigned nw = st->workers < IOCP_STATS_MAX_WORKERS ? st->workers : IOCP_STATS_MAX_WORKERS;
    r->now.t_ms = st->uptime_ms;
    r->now.bytes_in = st->bytes_in;
    r->now.bytes_out = st->bytes_out;
    r->now.accepted = st->accepted;
    r->now.closed = st->closed;
    for (unsigned i = 0; i < nw; i++)
        r->now.completions[i] = st->worker[i].completions;

    const struct ep_sample *b = &ep.base;
    r->since_start = b->t_ms == 0;
    r->interval_ms = r->now.t_ms > b->t_ms ? r->now.t_ms - b->t_ms : 0;
    r->in_rate = per_second(r->now.bytes_in, b->bytes_in, r->interval_ms);
    r->out_rate = per_second(r->now.bytes_out, b->bytes_out, r->interval_ms);
    r->accept_rate = per_second(r->now.accepted, b->accepted, r->interval_ms);
    r->close_rate = per_second(r->now.closed, b->closed, r->interval_ms);
    for (unsigned i = 0; i < nw; i++)
        r->completion_rate[i] =
            per_second(r->now.completions[i], b->completions[i], r->interval_ms);
    if (advance && r->interval_ms >= EP_RATE_MIN_MS)
        ep.base = r->now;

    r->pool_total = st->pool_free + (st->pool_lent - st->pool_returned);
    if (ep.s) {
        iocp_server_address(ep.s, r->listening, sizeof r->listening);
        r->server_conns = iocp_server_conns(ep.s);
    }
}

static unsigned report_workers(const struct ep_report *r)
{
    return r->st.workers < IOCP_STATS_MAX_WORKERS ? r->st.workers : IOCP_STATS_MAX_WORKERS;
}

static bool walk_agrees(const struct iocp_stats *st)
{
    return st->walked == st->online && st->hashed == st->online;
}

/* "1.5 GiB": binary units, three significant digits or so. */
static const char *human_bytes(double v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", v);
    else
        snprintf(buf, len, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
    return buf;
}

static void report_text(struct json_buf *b)
{
    struct ep_report r;
    take_report(&r, true);
    const struct iocp_stats *st = &r.st;
    uint64_t up = st->uptime_ms / 1000;
    char x[32], y[32], z[32], w[32];

    json_printf(b, "iocptool %s   pid %ld   backend %s   %u worker%s   up %llu:%02u:%02u\n",
                cli_command ? cli_command : "?", (long)getpid(), st->backend, st->workers,
                st->workers == 1 ? "" : "s", (unsigned long long)(up / 3600),
                (unsigned)(up / 60 % 60), (unsigned)(up % 60));
    if (ep.s)
        json_printf(b, "listening     %s, %u connection%s\n", r.listening, r.server_conns,
                    r.server_conns == 1 ? "" : "s");
    json_printf(b, "online        %llu counted, %llu walked, %llu hashed: %s\n",
                (unsigned long long)st->online, (unsigned long long)st->walked,
                (unsigned long long)st->hashed, walk_agrees(st) ? "agree" : "DISAGREE");
    json_printf(b, "hash          %llu buckets in use, longest chain %llu\n",
                (unsigned long long)st->buckets_used, (unsigned long long)st->longest_chain);
    json_printf(b, "accepts       %llu pending (low %u, high %u), %llu errors, %llu back-offs\n",
                (unsigned long long)st->pending_accepts, st->accept_low, st->accept_high,
                (unsigned long long)st->accept_errors, (unsigned long long)st->accept_backoffs);
    json_printf(b, "pool          %llu free of %llu contexts\n", (unsigned long long)st->pool_free,
                (unsigned long long)r.pool_total);
    json_printf(b, "totals        %llu accepted, %llu connected, %llu closed, %llu refused\n",
                (unsigned long long)st->accepted, (unsigned long long)st->connected,
                (unsigned long long)st->closed, (unsigned long long)st->refused);
    json_printf(b, "traffic       in %s, out %s\n", human_bytes((double)st->bytes_in, x, sizeof x),
                human_bytes((double)st->bytes_out, y, sizeof y));
    json_printf(b, "rates         in %s/s, out %s/s, %.1f accepts/s, %.1f closes/s (%s %.1f s)\n",
                human_bytes(r.in_rate, x, sizeof x), human_bytes(r.out_rate, y, sizeof y),
                r.accept_rate, r.close_rate, r.since_start ? "since start," : "over the last",
                (double)r.interval_ms / 1000.0);
    json_printf(b, "posts         %llu failed\n", (unsigned long long)st->failed_submits);
    json_printf(b, "\n%-7s %10s %14s %12s %12s %12s\n", "worker", "conns", "completions",
                "per second", "in", "out");
    for (unsigned i = 0; i < report_workers(&r); i++)
        json_printf(b, "%-7u %10llu %14llu %12.1f %12s %12s\n", i,
                    (unsigned long long)st->worker[i].conns,
                    (unsigned long long)st->worker[i].completions, r.completion_rate[i],
                    human_bytes((double)st->worker[i].bytes_in, z, sizeof z),
                    human_bytes((double)st->worker[i].bytes_out, w, sizeof w));
}

#define JU(b, key, v) json_printf(b, ",\"%s\":%llu", key, (unsigned long long)(v))

static void report_json(struct json_buf *b)
{
    struct ep_report r;
    take_report(&r, true);
    const struct iocp_stats *st = &r.st;
    json_printf(b, "{\"pid\":%ld", (long)getpid());
    json_key(b, "command", false);
    json_str(b, cli_command ? cli_command : "");
    json_key(b, "version", false);
    json_str(b, IOCP_VERSION_STRING);
    json_key(b, "backend", false);
    json_str(b, st->backend);
    JU(b, "workers", st->workers);
    JU(b, "uptime_ms", st->uptime_ms);
    if (ep.s) {
        json_key(b, "listening", false);
        json_str(b, r.listening);
        JU(b, "server_connections", r.server_conns);
    }
    json_printf(b, ",\"online\":{\"counted\":%llu,\"walked\":%llu,\"hashed\":%llu,\"agree\":%s}",
                (unsigned long long)st->online, (unsigned long long)st->walked,
                (unsigned long long)st->hashed, walk_agrees(st) ? "true" : "false");
    json_printf(b, ",\"hash\":{\"buckets_used\":%llu,\"longest_chain\":%llu}",
                (unsigned long long)st->buckets_used, (unsigned long long)st->longest_chain);
    json_printf(b,
                ",\"accepts\":{\"pending\":%llu,\"low\":%u,\"high\":%u,\"errors\":%llu,"
                "\"backoffs\":%llu}",
                (unsigned long long)st->pending_accepts, st->accept_low, st->accept_high,
                (unsigned long long)st->accept_errors, (unsigned long long)st->accept_backoffs);
    json_printf(b, ",\"pool\":{\"free\":%llu,\"total\":%llu,\"created\":%llu}",
                (unsigned long long)st->pool_free, (unsigned long long)r.pool_total,
                (unsigned long long)st->pool_created);
    JU(b, "bytes_in", st->bytes_in);
    JU(b, "bytes_out", st->bytes_out);
    JU(b, "accepted", st->accepted);
    JU(b, "connected", st->connected);
    JU(b, "closed", st->closed);
    JU(b, "refused", st->refused);
    JU(b, "failed_posts", st->failed_submits);
    json_printf(b,
                ",\"rates\":{\"interval_ms\":%llu,\"since_start\":%s,\"bytes_in_per_s\":%.1f,"
                "\"bytes_out_per_s\":%.1f,\"accepted_per_s\":%.1f,\"closed_per_s\":%.1f}",
                (unsigned long long)r.interval_ms, r.since_start ? "true" : "false", r.in_rate,
                r.out_rate, r.accept_rate, r.close_rate);
    json_printf(b, ",\"ops\":{");
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        json_printf(b, "%s\"%s\":{\"submitted\":%llu,\"completed\":%llu}", op ? "," : "",
                    op_names[op], (unsigned long long)st->submitted[op],
                    (unsigned long long)st->completed[op]);
    json_printf(b, "},\"per_worker\":[");
    for (unsigned i = 0; i < report_workers(&r); i++)
        json_printf(b,
                    "%s{\"worker\":%u,\"connections\":%llu,\"completions\":%llu,"
                    "\"completions_per_s\":%.1f,\"bytes_in\":%llu,\"bytes_out\":%llu}",
                    i ? "," : "", i, (unsigned long long)st->worker[i].conns,
                    (unsigned long long)st->worker[i].completions, r.completion_rate[i],
                    (unsigned long long)st->worker[i].bytes_in,
                    (unsigned long long)st->worker[i].bytes_out);
    json_printf(b, "]}\n");
}

/* A label value in the exposition format: backslash, quote and newline
 * escaped. */
static void prom_label(struct json_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            json_printf(b, "\\%c", *v);
        else if (*v == '\n')
            json_printf(b, "\\n");
        else
            json_append(b, v, 1);
    }
}

static void prom_head(struct json_buf *b, const char *name, const char *type, const char *help)
{
    json_printf(b, "# HELP iocptool_%s %s\n# TYPE iocptool_%s %s\n", name, help, name, type);
}

static void prom_one(struct json_buf *b, const char *name, const char *type, const char *help,
                     uint64_t v)
{
    prom_head(b, name, type, help);
    json_printf(b, "iocptool_%s %llu\n", name, (unsigned long long)v);
}

static void report_prometheus(struct json_buf *b)
{
    struct ep_report r;
    take_report(&r, false);
    const struct iocp_stats *st = &r.st;
    prom_head(b, "info", "gauge", "Constant 1, labelled with what runs.");
    json_printf(b, "iocptool_info{command=\"");
    prom_label(b, cli_command ? cli_command : "");
    json_printf(b, "\",backend=\"");
    prom_label(b, st->backend);
    json_printf(b, "\",version=\"%s\"} 1\n", IOCP_VERSION_STRING);
    prom_head(b, "uptime_seconds", "gauge", "Seconds since the engine started.");
    json_printf(b, "iocptool_uptime_seconds %.3f\n", (double)st->uptime_ms / 1000.0);
    prom_one(b, "workers", "gauge", "Worker threads.", st->workers);
    prom_one(b, "connections_online", "gauge", "Connections online (the registry's counter).",
             st->online);
    prom_one(b, "connections_walked", "gauge", "Connections found walking the online list.",
             st->walked);
    prom_one(b, "connections_hashed", "gauge", "Connections found walking the socket hash.",
             st->hashed);
    prom_one(b, "hash_buckets_used", "gauge", "Socket hash buckets in use.", st->buckets_used);
    prom_one(b, "hash_longest_chain", "gauge", "Longest socket hash chain.", st->longest_chain);
    prom_one(b, "accepts_pending", "gauge", "Accepts posted and not yet completed.",
             st->pending_accepts);
    prom_one(b, "accepts_low_watermark", "gauge", "Pending accepts are refilled below this.",
             st->accept_low);
    prom_one(b, "accepts_high_watermark", "gauge", "Pending accepts are refilled up to this.",
             st->accept_high);
    prom_one(b, "pool_contexts_free", "gauge", "Pooled connection contexts free.", st->pool_free);
    prom_one(b, "pool_contexts", "gauge", "Pooled connection contexts, free and lent.",
             r.pool_total);
    prom_one(b, "received_bytes_total", "counter", "Bytes received.", st->bytes_in);
    prom_one(b, "sent_bytes_total", "counter", "Bytes sent.", st->bytes_out);
    prom_one(b, "accepted_total", "counter", "Connections accepted.", st->accepted);
    prom_one(b, "connected_total", "counter", "Outgoing connections established.", st->connected);
    prom_one(b, "closed_total", "counter", "Connections closed.", st->closed);
    prom_one(b, "refused_total", "counter", "Connections refused (filter or limit).", st->refused);
    prom_one(b, "accept_errors_total", "counter", "Failed accept completions.", st->accept_errors);
    prom_one(b, "accept_backoffs_total", "counter",
             "Pauses in accepting after EMFILE and the like.", st->accept_backoffs);
    prom_one(b, "failed_posts_total", "counter", "Submits or posts refused by the port.",
             st->failed_submits);
    prom_head(b, "ops_submitted_total", "counter", "Requests submitted, per operation.");
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        json_printf(b, "iocptool_ops_submitted_total{op=\"%s\"} %llu\n", op_names[op],
                    (unsigned long long)st->submitted[op]);
    prom_head(b, "ops_completed_total", "counter", "Requests completed, per operation.");
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        json_printf(b, "iocptool_ops_completed_total{op=\"%s\"} %llu\n", op_names[op],
                    (unsigned long long)st->completed[op]);
    unsigned nw = report_workers(&r);
    prom_head(b, "worker_connections", "gauge", "Connections owned by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_connections{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)st->worker[i].conns);
    prom_head(b, "worker_completions_total", "counter", "Completions dispatched by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_completions_total{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)st->worker[i].completions);
    prom_head(b, "worker_received_bytes_total", "counter", "Bytes received by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_received_bytes_total{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)st->worker[i].bytes_in);
    prom_head(b, "worker_sent_bytes_total", "counter", "Bytes sent by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_sent_bytes_total{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)st->worker[i].bytes_out);
}

struct clients_ctx {
    struct json_buf *b;
    bool json;
    size_t n;
};

static bool list_one(const struct iocp_conn_info *info, void *arg)
{
    struct clients_ctx *ctx = arg;
    if (ctx->json) {
        json_printf(ctx->b, "%s{\"id\":%llu", ctx->n ? "," : "", (unsigned long long)info->id);
        json_key(ctx->b, "peer", false);
        json_str(ctx->b, info->peer);
        json_printf(ctx->b,
                    ",\"worker\":%u,\"age_ms\":%llu,\"idle_ms\":%llu,\"bytes_in\":%llu,"
                    "\"bytes_out\":%llu}",
                    info->worker, (unsigned long long)info->age_ms,
                    (unsigned long long)info->idle_ms, (unsigned long long)info->bytes_in,
                    (unsigned long long)info->bytes_out);
    } else {
        json_printf(ctx->b, "%-20llu %-47s %10.3f %10.3f %12llu %12llu\n",
                    (unsigned long long)info->id, info->peer, (double)info->age_ms / 1000.0,
                    (double)info->idle_ms / 1000.0, (unsigned long long)info->bytes_in,
                    (unsigned long long)info->bytes_out);
    }
    ctx->n++;
    return !ctx->b->failed;
}

static void report_clients(struct json_buf *b, bool json)
{
    struct clients_ctx ctx = {b, json, 0};
    if (json)
        json_printf(b, "[");
    iocp_engine_foreach_conn(ep.e, list_one, &ctx);
    if (json)
        json_printf(b, "]\n");
}

/* ---- serving clients ---- */

static void client_close(struct ep_client *c)
{
    close(c->fd);
    c->fd = -1;
    json_buf_free(&c->out);
}

static void client_answer(struct ep_client *c, size_t linelen)
{
    /* The line without its end: "\n" or "\r\n". */
    while (linelen && (c->in[linelen - 1] == '\n' || c->in[linelen - 1] == '\r'))
        linelen--;
    char req[EP_REQ_MAX + 1];
    memcpy(req, c->in, linelen);
    req[linelen] = '\0';
    bool ok = strlen(req) == linelen; /* no NUL inside */
    if (ok && !strcmp(req, "stats"))
        report_text(&c->out);
    else if (ok && !strcmp(req, "json"))
        report_json(&c->out);
    else if (ok && !strcmp(req, "prometheus"))
        report_prometheus(&c->out);
    else if (ok && !strcmp(req, "clients"))
        report_clients(&c->out, false);
    else if (ok && !strcmp(req, "clients-json"))
        report_clients(&c->out, true);
    else
        json_printf(&c->out, "error: unknown request (expected stats, json, prometheus, "
                             "clients or clients-json)\n");
    if (c->out.failed) {
        json_buf_free(&c->out);
        json_printf(&c->out, "error: out of memory\n");
    }
    c->state = EP_WRITING;
    c->deadline = now_ms() + EP_WRITE_MS;
}

static void client_error(struct ep_client *c, const char *why)
{
    json_buf_free(&c->out);
    json_printf(&c->out, "error: %s\n", why);
    c->state = EP_WRITING;
    c->deadline = now_ms() + EP_WRITE_MS;
}

static void client_read(struct ep_client *c)
{
    if (c->state == EP_DRAINING) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            client_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    if (n == 0) {
        /* A request without its newline still counts at EOF. */
        if (c->inlen)
            client_answer(c, c->inlen);
        else
            client_close(c);
        return;
    }
    size_t start = c->inlen;
    c->inlen += (size_t)n;
    char *nl = memchr(c->in + start, '\n', c->inlen - start);
    if (nl)
        client_answer(c, (size_t)(nl - c->in) + 1);
    else if (c->inlen == sizeof c->in)
        client_error(c, "request too long");
}

static void client_write(struct ep_client *c)
{
    while (c->outoff < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                client_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    /* All sent: our end of the stream, then a short drain so that unread
     * input does not turn the close into a reset that eats the answer. */
    json_buf_free(&c->out);
    shutdown(c->fd, SHUT_WR);
    c->state = EP_DRAINING;
    c->deadline = now_ms() + EP_DRAIN_MS;
}

static bool peer_allowed(int fd)
{
    if (!ep.is_unix)
        return true;
#ifdef SO_PEERCRED
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == geteuid() || cred.uid == 0;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) < 0)
        return false;
    return uid == geteuid() || uid == 0;
#endif
}

/* A slot for a new client: a free one, else the oldest client that is not
 * being answered, else the oldest of all.  So stalled clients (the same
 * user's: others never get in) cannot keep the next one out. */
static struct ep_client *free_slot(void)
{
    struct ep_client *idle = NULL, *any = NULL;
    for (int i = 0; i < EP_MAX_CLIENTS; i++) {
        struct ep_client *c = &ep.clients[i];
        if (c->fd < 0)
            return c;
        if (c->state != EP_WRITING && (!idle || c->since < idle->since))
            idle = c;
        if (!any || c->since < any->since)
            any = c;
    }
    struct ep_client *victim = idle ? idle : any;
    client_close(victim);
    return victim;
}

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(ep.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error that the next poll reports again */
        if (!peer_allowed(fd)) {
            close(fd);
            continue;
        }
        struct ep_client *slot = free_slot();
        memset(slot, 0, sizeof *slot);
        slot->fd = fd;
        slot->state = EP_READING;
        slot->since = now_ms();
        slot->deadline = slot->since + EP_READ_MS;
    }
}

static void *serve(void *arg)
{
    (void)arg;
    struct pollfd pfd[EP_MAX_CLIENTS + 2];
    int idx[EP_MAX_CLIENTS + 2];
    for (;;) {
        uint64_t now = now_ms();
        int n = 0, timeout = -1;
        pfd[n].fd = ep.wake[0];
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < EP_MAX_CLIENTS; i++) {
            struct ep_client *c = &ep.clients[i];
            if (c->fd < 0)
                continue;
            if (c->deadline <= now) {
                client_close(c);
                continue;
            }
            int left = (int)(c->deadline - now);
            if (timeout < 0 || left < timeout)
                timeout = left;
            pfd[n].fd = c->fd;
            pfd[n].events = c->state == EP_WRITING ? POLLOUT : POLLIN;
            idx[n++] = i;
        }
        /* Last, so that a slot reused for a new client is not looked at
         * again in this round. */
        pfd[n].fd = ep.lfd;
        pfd[n].events = POLLIN;
        idx[n++] = -2;
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (pfd[0].revents)
            break;
        for (int k = 1; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] == -2) {
                accept_clients();
                continue;
            }
            struct ep_client *c = &ep.clients[idx[k]];
            if (c->state == EP_WRITING) {
                client_write(c);
                continue;
            }
            client_read(c);
            /* An answer can often go out at once. */
            if (c->fd >= 0 && c->state == EP_WRITING)
                client_write(c);
        }
    }
    for (int i = 0; i < EP_MAX_CLIENTS; i++)
        if (ep.clients[i].fd >= 0)
            client_close(&ep.clients[i]);
    return NULL;
}

/* ---- start and stop ---- */

int stats_endpoint_start(struct iocp_engine *e, struct iocp_server *s, const char *spec)
{
    char err[512], path[256];
    if (ep.running) {
        diag_error("stats endpoint: already running");
        return -1;
    }
    if (!spec) {
        const char *why;
        char dir[200];
        if (stats_endpoint_dir(dir, sizeof dir, true, &why) < 0) {
            diag_error("stats endpoint: %s: %s", dir, why);
            return -1;
        }
        snprintf(path, sizeof path, "%s/%ld.sock", dir, (long)getpid());
        spec = path;
    }
    ep.is_unix = false;
    ep.lfd = is_tcp(spec) ? open_tcp(spec, err, sizeof err) : open_unix(spec, err, sizeof err);
    if (ep.lfd < 0) {
        diag_error("stats endpoint: %s", err);
        return -1;
    }
    if (pipe2(ep.wake, O_CLOEXEC) < 0) {
        diag_error("stats endpoint: %s", strerror(errno));
        goto err1;
    }
    ep.e = e;
    ep.s = s;
    memset(&ep.base, 0, sizeof ep.base);
    for (int i = 0; i < EP_MAX_CLIENTS; i++)
        ep.clients[i].fd = -1;
    /* The thread inherits the caller's signal mask: the stop signals stay
     * with the main thread. */
    int rc = pthread_create(&ep.thread, NULL, serve, NULL);
    if (rc != 0) {
        diag_error("stats endpoint: cannot start its thread: %s", strerror(rc));
        goto err2;
    }
    ep.running = true;
    return 0;

err2:
    close(ep.wake[0]);
    close(ep.wake[1]);
    ep.wake[0] = ep.wake[1] = -1;
err1:
    close(ep.lfd);
    ep.lfd = -1;
    if (ep.is_unix)
        unlink(ep.path);
    return -1;
}

void stats_endpoint_stop(void)
{
    if (!ep.running)
        return;
    ep.running = false;
    while (write(ep.wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(ep.thread, NULL);
    close(ep.wake[0]);
    close(ep.wake[1]);
    ep.wake[0] = ep.wake[1] = -1;
    close(ep.lfd);
    ep.lfd = -1;
    /* Remove the file only if it is still the one we bound. */
    struct stat st;
    if (ep.is_unix && lstat(ep.path, &st) == 0 && st.st_dev == ep.dev && st.st_ino == ep.ino)
        unlink(ep.path);
    ep.e = NULL;
    ep.s = NULL;
}
