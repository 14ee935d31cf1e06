/* SPDX-License-Identifier: MIT */
/*
 * The relay's SOCKS5 server (relay --socks5): one session per client, in
 * front of an ordinary relay pair.  The session reads the client's
 * greeting, its username/password when the relay asks for one
 * (--socks5-auth), and its CONNECT request; the relay then connects to the
 * destination as to any target, and the session answers the client with
 * the outcome.  From the answer on, the pair carries the bytes as any
 * other (splice, back-pressure, half-close, stats).
 *
 * Access: the clients are the relay's --allow/--deny; the destinations are
 * --to-allow/--to-deny, checked before connecting for an address, and for
 * a name on the address it was connected to, before a single byte passes.
 * A client that has not finished its request within the deadline is
 * reset.
 *
 * Everything runs on the client's worker, in the pair's callbacks.
 */
#ifndef IOCPTOOL_SOCKS_SERVER_H
#define IOCPTOOL_SOCKS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp.h"

#include "acl.h"
#include "leg.h"

/* Without -w: how long a client may take to send its request. */
#define SOCKS_REQUEST_TIMEOUT_MS 10000u

struct socks_cred;

struct socks_config {
    const char *listen;        /* --socks5 [ADDR:]PORT: serve SOCKS5 there */
    const char *auth_file;     /* --socks5-auth: USER:PASS lines */
    struct socks_cred *creds;  /* loaded from it; NULL: no authentication */
    size_t ncreds;
    struct acl from;           /* --allow, --deny: the clients (any relay) */
    struct acl to;             /* --to-allow, --to-deny */
    unsigned timeout_ms;       /* the request's deadline */
};

/* The relay's options for the SOCKS server and access lists (getopt_long
 * codes, clear of relay.c's own). */
enum {
    SOCKS_OPT_SOCKS5 = 0x400,
    SOCKS_OPT_SOCKS5_AUTH,
    SOCKS_OPT_ALLOW,
    SOCKS_OPT_DENY,
    SOCKS_OPT_TO_ALLOW,
    SOCKS_OPT_TO_DENY,
};
#define SOCKS_LONG_OPTIONS                                                                         \
    {"socks5", required_argument, NULL, SOCKS_OPT_SOCKS5},                                         \
        {"socks5-auth", required_argument, NULL, SOCKS_OPT_SOCKS5_AUTH},                           \
        {"allow", required_argument, NULL, SOCKS_OPT_ALLOW},                                       \
        {"deny", required_argument, NULL, SOCKS_OPT_DENY},                                         \
        {"to-allow", required_argument, NULL, SOCKS_OPT_TO_ALLOW},                                 \
    {                                                                                              \
        "to-deny", required_argument, NULL, SOCKS_OPT_TO_DENY                                      \
    }
/* Their lines of relay --help. */
extern const char socks_options_help[];

/* One of those options: 1 taken, 0 not one of them, -1 a bad value (the
 * reason printed). */
int socks_option(struct socks_config *cfg, int opt, const char *arg);

/* --allow/--deny on a client about to be accepted (said at -v when not). */
bool socks_client_admits(const struct socks_config *cfg, const struct sockaddr *peer);

/* Load --socks5-auth (a private file, as --key) into cfg: false with the
 * reason printed. */
bool socks_config_load(const char *cmd, struct socks_config *cfg);
void socks_config_fini(struct socks_config *cfg);

/* What a session tells the pair. */
struct socks_events {
    /* The request is in and admitted: connect to socks_session_host():
     * socks_session_port(). */
    void (*request)(void *arg);
    /* The client broke the protocol, failed to authenticate, asked for
     * what is refused, or took too long.  reply_queued: a SOCKS answer
     * was queued and the client should be closed gracefully so that it
     * gets it; otherwise reset it. */
    void (*failed)(void *arg, const char *why, bool reply_queued);
};

struct socks_session;

/* A session for the client leg (plain or encrypted: its answers go
 * through leg_send).  NULL when out of memory. */
struct socks_session *socks_session_new(const struct socks_config *cfg, struct leg *client,
                                        const struct socks_events *ev, void *arg);

/* The client's bytes: how many the session took (fewer than len only once
 * the request is complete: the rest is data for the destination, after
 * socks_session_leftover()). */
size_t socks_session_feed(struct socks_session *s, const void *data, size_t len);

/* Once the request is complete: bytes the client sent after it that the
 * session holds (data for the destination, before the rest of the call
 * that completed it); taken by this call, valid until the next. */
const void *socks_session_leftover(struct socks_session *s, size_t *len);

/* True until the request is complete. */
bool socks_session_negotiating(const struct socks_session *s);

const char *socks_session_host(const struct socks_session *s);
uint16_t socks_session_port(const struct socks_session *s);

/* The destination is connected as `target`: true, and the success answer
 * is queued, when its address is admitted; false (refusal queued, events
 * .failed called) otherwise. */
bool socks_session_connected(struct socks_session *s, struct iocp_conn *target);

/* The destination could not be reached (status from the connect): queue
 * the matching answer and call events.failed. */
void socks_session_unreachable(struct socks_session *s, int status);

void socks_session_free(struct socks_session *s);

#endif /* IOCPTOOL_SOCKS_SERVER_H */
