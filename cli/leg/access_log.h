/* SPDX-License-Identifier: MIT */
/*
 * The relay's access log (--log FILE|-): one line per connection at its end,
 * JSON by default, a human line with --log-format text.
 *
 * With --tls-listen each line also says how the client's TLS handshake
 * went: the protocol and cipher agreed (and whether the session was
 * resumed), or the reason it failed (the message -v prints); with
 * --tls-target, the target's likewise.
 *
 * The line is formatted on the worker that saw the end (memory only) and
 * written by the log's own thread (record_sink.h); a line that finds the
 * buffer full is dropped and counted (stats: log_dropped).
 */
#ifndef IOCPTOOL_ACCESS_LOG_H
#define IOCPTOOL_ACCESS_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* How a relayed connection ended. */
enum conn_end {
    CONN_END_EOF,     /* both sides ended their streams */
    CONN_END_RESET,   /* a side was reset or failed, and the other was reset */
    CONN_END_TIMEOUT, /* a time-out ended it */
    CONN_END_REFUSED, /* no target could be reached: the client was reset */
    CONN_END_DRAINED, /* closed at the end of a drain, still live */
};

const char *conn_end_name(enum conn_end end);

/* One side's TLS handshake: what it agreed on, or why it failed; all
 * NULL when that side has no TLS (the line then says nothing of it). */
struct access_tls {
    const char *protocol, *cipher;
    bool resumed;
    const char *error;
};

struct access_entry {
    uint64_t id;          /* the client connection's ID (as stats lists it) */
    const char *client;   /* "host:port" */
    const char *listen;   /* the address the client reached */
    const char *target;   /* NULL when none was reached */
    uint64_t from_client; /* bytes from the client (towards the target) */
    uint64_t to_client;   /* bytes to the client */
    uint64_t duration_ms;
    enum conn_end end;
    struct access_tls client_tls; /* --tls-listen */
    struct access_tls target_tls; /* --tls-target */
};

/* Open the log, buffering at most kib KiB of lines (0: the default);
 * false once said why. */
bool access_log_open(const char *path, bool text, unsigned kib);

bool access_log_enabled(void);

/* Log one connection's end (any worker). */
void access_log_write(const struct access_entry *e);

/* Write what is buffered and close (a stuck pipe is given up after 2 s). */
void access_log_close(void);

/* Milliseconds since the epoch (UTC) and a monotonic clock, for entries. */
uint64_t access_log_now_ms(void);
uint64_t access_log_mono_ms(void);

#endif /* IOCPTOOL_ACCESS_LOG_H */
