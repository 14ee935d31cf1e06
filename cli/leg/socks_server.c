/* SPDX-License-Identifier: MIT */
/*
 * The relay's SOCKS5 server sessions (socks_server.h) on the pure
 * parsers of socks_wire.c.
 */
#include "socks_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "keyfile.h"
#include "netcompat.h"
#include "socks_wire.h"

/* The most a client may send before its request is complete: a greeting
 * of 257 bytes, credentials of 513 and a request of 262. */
#define SOCKS_NEGOTIATION_MAX 1100u
/* The largest credentials file read. */
#define SOCKS_AUTH_FILE_MAX (64u * 1024u)

struct socks_cred {
    char user[256], pass[256];
};

enum socks_step { STEP_HELLO, STEP_USERPASS, STEP_REQUEST, STEP_CONNECTING, STEP_DONE };

struct socks_session {
    const struct socks_config *cfg;
    struct leg *client;
    const struct socks_events *ev;
    void *arg;
    struct iocp_timer *deadline;
    enum socks_step step;
    struct socks5_request req;
    size_t have;
    uint8_t in[SOCKS_NEGOTIATION_MAX];
};

/* ---- configuration ---- */

const char socks_options_help[] =
    "      --socks5 ADDR      be a SOCKS5 server on [ADDR:]PORT instead (no targets:\n"
    "                         each client names its destination: IPv4, IPv6, names)\n"
    "      --socks5-auth FILE ask SOCKS5 clients for a USER:PASS line of FILE\n"
    "                         (private to its owner)\n"
    "      --allow LIST       relay only clients in LIST (addresses, CIDR ranges)\n"
    "      --deny LIST        never relay clients in LIST (wins over --allow)\n"
    "      --to-allow LIST    SOCKS5: reach only destinations in LIST\n"
    "      --to-deny LIST     SOCKS5: never reach destinations in LIST\n";

int socks_option(struct socks_config *cfg, int opt, const char *arg)
{
    static const char *const names[] = {"--allow", "--deny", "--to-allow", "--to-deny"};
    char why[200];
    switch (opt) {
    case SOCKS_OPT_SOCKS5:
        cfg->listen = arg;
        return 1;
    case SOCKS_OPT_SOCKS5_AUTH:
        cfg->auth_file = arg;
        return 1;
    case SOCKS_OPT_ALLOW:
    case SOCKS_OPT_DENY:
    case SOCKS_OPT_TO_ALLOW:
    case SOCKS_OPT_TO_DENY: {
        bool to = opt == SOCKS_OPT_TO_ALLOW || opt == SOCKS_OPT_TO_DENY;
        bool deny = opt == SOCKS_OPT_DENY || opt == SOCKS_OPT_TO_DENY;
        if (!acl_add(to ? &cfg->to : &cfg->from, deny, arg, why, sizeof why)) {
            diag_error("relay: %s %s", names[opt - SOCKS_OPT_ALLOW], why);
            return -1;
        }
        return 1;
    }
    default:
        return 0;
    }
}

bool socks_client_admits(const struct socks_config *cfg, const struct sockaddr *peer)
{
    if (acl_admits(&cfg->from, peer))
        return true;
    if (diag_verbosity >= 1) {
        char host[INET6_ADDRSTRLEN] = "?";
        const void *addr =
            peer->sa_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)(const void *)peer)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
        inet_ntop(peer->sa_family, addr, host, sizeof host);
        diag_info(1, "relay: %s: denied by --allow/--deny", host);
    }
    return false;
}

bool socks_config_load(const char *cmd, struct socks_config *cfg)
{
    if (!cfg->auth_file)
        return true;
    char *text = malloc(SOCKS_AUTH_FILE_MAX + 1);
    if (!text) {
        diag_error("%s: out of memory", cmd);
        return false;
    }
    size_t len = 0;
    if (keyfile_read(cmd, cfg->auth_file, text, SOCKS_AUTH_FILE_MAX + 1, &len) != 0) {
        free(text);
        return false;
    }
    text[len] = '\0';
    bool ok = true;
    unsigned line_no = 0;
    for (char *line = text, *next; ok && line && *line; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        size_t ulen = colon ? (size_t)(colon - line) : 0;
        size_t plen = colon ? strlen(colon + 1) : 0;
        if (!colon || ulen == 0 || ulen > 255 || plen > 255) {
            diag_error("%s: --socks5-auth %s: line %u: expected USER:PASS (each 1 to 255 bytes)",
                       cmd, cfg->auth_file, line_no);
            ok = false;
            break;
        }
        struct socks_cred *grown = realloc(cfg->creds, (cfg->ncreds + 1) * sizeof *grown);
        if (!grown) {
            diag_error("%s: out of memory", cmd);
            ok = false;
            break;
        }
        cfg->creds = grown;
        struct socks_cred *c = &cfg->creds[cfg->ncreds++];
        memset(c, 0, sizeof *c);
        memcpy(c->user, line, ulen);
        memcpy(c->pass, colon + 1, plen);
    }
    if (ok && cfg->ncreds == 0) {
        diag_error("%s: --socks5-auth %s: no USER:PASS line", cmd, cfg->auth_file);
        ok = false;
    }
    keyfile_wipe(text, SOCKS_AUTH_FILE_MAX + 1);
    free(text);
    return ok;
}

void socks_config_fini(struct socks_config *cfg)
{
    if (cfg->creds)
        keyfile_wipe(cfg->creds, cfg->ncreds * sizeof *cfg->creds);
    free(cfg->creds);
    cfg->creds = NULL;
    cfg->ncreds = 0;
    acl_fini(&cfg->from);
    acl_fini(&cfg->to);
}

/* Equal strings, in a time that does not depend on where they differ. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < 256; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(ca ^ cb);
    }
    return diff == 0;
}

static bool cred_ok(const struct socks_config *cfg, const struct socks5_userpass *up)
{
    bool ok = false;
    for (size_t i = 0; i < cfg->ncreds; i++)
        ok |= same_secret(cfg->creds[i].user, up->user) & same_secret(cfg->creds[i].pass, up->pass);
    return ok;
}

/* ---- a session ---- */

static void reply(struct socks_session *s, const void *data, size_t len)
{
    if (s->client->c)
        leg_send(s->client, data, len);
}

static void refuse(struct socks_session *s, uint8_t code, const char *why)
{
    uint8_t out[32];
    reply(s, out, socks5_reply(out, code, NULL, 0, 0));
    s->step = STEP_DONE;
    s->ev->failed(s->arg, why, true);
}

static void on_deadline(struct iocp_timer *t, void *arg)
{
    struct socks_session *s = arg;
    (void)t;
    if (s->step < STEP_CONNECTING && s->client->c) {
        s->step = STEP_DONE;
        s->ev->failed(s->arg, "SOCKS client sent no complete request in time", false);
    }
}

struct socks_session *socks_session_new(const struct socks_config *cfg, struct leg *client,
                                        const struct socks_events *ev, void *arg)
{
    struct socks_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->client = client;
    s->ev = ev;
    s->arg = arg;
    struct iocp_conn *c = client->c;
    if (iocp_timer_new(iocp_conn_engine(c), iocp_conn_worker(c), on_deadline, s, &s->deadline) !=
            0 ||
        iocp_timer_start(s->deadline, cfg->timeout_ms ? cfg->timeout_ms : SOCKS_REQUEST_TIMEOUT_MS,
                         0) != 0) {
        iocp_timer_free(s->deadline);
        free(s);
        return NULL;
    }
    return s;
}

void socks_session_free(struct socks_session *s)
{
    if (!s)
        return;
    iocp_timer_free(s->deadline);
    keyfile_wipe(s->in, sizeof s->in);
    free(s);
}

bool socks_session_negotiating(const struct socks_session *s)
{
    return s->step < STEP_CONNECTING;
}

const char *socks_session_host(const struct socks_session *s)
{
    return s->req.host;
}

uint16_t socks_session_port(const struct socks_session *s)
{
    return s->req.port;
}

/* The request is in: check it, then hand it to the pair. */
static void request_in(struct socks_session *s)
{
    if (s->req.cmd != 1) {
        refuse(s, SOCKS5_CMD_UNSUPPORTED, "SOCKS command other than CONNECT");
        return;
    }
    if (s->req.atyp == 0) {
        refuse(s, SOCKS5_ATYP_UNSUPPORTED, "SOCKS address type unknown");
        return;
    }
    if (s->req.port == 0) {
        refuse(s, SOCKS5_NOT_ALLOWED, "SOCKS request for port 0");
        return;
    }
    /* An address is checked now; a name once it is connected. */
    if (s->req.atyp != 3 && !acl_empty(&s->cfg->to)) {
        union {
            struct sockaddr sa;
            struct sockaddr_in in4;
            struct sockaddr_in6 in6;
        } a;
        memset(&a, 0, sizeof a);
        if (s->req.atyp == 1) {
            a.in4.sin_family = AF_INET;
            memcpy(&a.in4.sin_addr, s->req.addr, 4);
        } else {
            a.in6.sin6_family = AF_INET6;
            memcpy(&a.in6.sin6_addr, s->req.addr, 16);
        }
        if (!acl_admits(&s->cfg->to, &a.sa)) {
            char why[340];
            snprintf(why, sizeof why, "SOCKS destination %s refused (--to-allow/--to-deny)",
                     s->req.host);
            refuse(s, SOCKS5_NOT_ALLOWED, why);
            return;
        }
    }
    iocp_timer_stop(s->deadline);
    s->step = STEP_CONNECTING;
    s->ev->request(s->arg);
}

size_t socks_session_feed(struct socks_session *s, const void *data, size_t len)
{
    if (s->step >= STEP_CONNECTING)
        return s->step == STEP_DONE ? len : 0;
    size_t room = sizeof s->in - s->have;
    size_t take = len < room ? len : room;
    memcpy(s->in + s->have, data, take);
    s->have += take;
    while (s->step < STEP_CONNECTING) {
        int rc;
        enum socks_step was = s->step;
        if (s->step == STEP_HELLO) {
            struct socks5_hello h;
            rc = socks5_parse_hello(s->in, s->have, &h);
            if (rc > 0) {
                uint8_t out[2] = {5, SOCKS5_METHOD_REFUSED};
                if (s->cfg->ncreds && h.userpass)
                    out[1] = SOCKS5_METHOD_USERPASS;
                else if (!s->cfg->ncreds && h.none)
                    out[1] = SOCKS5_METHOD_NONE;
                reply(s, out, 2);
                if (out[1] == SOCKS5_METHOD_REFUSED) {
                    s->step = STEP_DONE;
                    s->ev->failed(s->arg,
                                  s->cfg->ncreds ? "SOCKS client offers no username/password"
                                                 : "SOCKS client requires authentication",
                                  true);
                    return len;
                }
                s->step = out[1] == SOCKS5_METHOD_USERPASS ? STEP_USERPASS : STEP_REQUEST;
            }
        } else if (s->step == STEP_USERPASS) {
            struct socks5_userpass up;
            rc = socks5_parse_userpass(s->in, s->have, &up);
            if (rc > 0) {
                bool ok = cred_ok(s->cfg, &up);
                keyfile_wipe(&up, sizeof up);
                uint8_t out[2] = {1, ok ? 0 : 1};
                reply(s, out, 2);
                if (!ok) {
                    s->step = STEP_DONE;
                    s->ev->failed(s->arg, "SOCKS client gave a wrong user name or password", true);
                    return len;
                }
                s->step = STEP_REQUEST;
            }
        } else {
            rc = socks5_parse_request(s->in, s->have, &s->req);
        }
        if (rc < 0) {
            s->step = STEP_DONE;
            s->ev->failed(s->arg, "not a SOCKS5 client", false);
            return len;
        }
        if (rc == 0) {
            if (s->have == sizeof s->in) {
                s->step = STEP_DONE;
                s->ev->failed(s->arg, "SOCKS negotiation too long", false);
            }
            return len;
        }
        /* The message is taken; what follows stays for the next step. */
        s->have -= (size_t)rc;
        memmove(s->in, s->in + rc, s->have);
        keyfile_wipe(s->in + s->have, (size_t)rc);
        if (was == STEP_REQUEST) {
            request_in(s);
            break;
        }
    }
    /* The request is complete: what this call brought beyond the buffer
     * is the destination's, after socks_session_leftover(). */
    return s->step == STEP_DONE ? len : take;
}

const void *socks_session_leftover(struct socks_session *s, size_t *len)
{
    *len = s->have;
    s->have = 0;
    return s->in;
}

/* What a failed connect means to a SOCKS client. */
static uint8_t reply_code(int status)
{
    switch (status) {
    case IOCP_ECONNREFUSED:
        return SOCKS5_REFUSED;
    case IOCP_ENETUNREACH:
    case IOCP_ENETDOWN:
        return SOCKS5_NET_UNREACHABLE;
    case IOCP_EHOSTUNREACH:
    case IOCP_ETIMEDOUT:
    case IOCP_ENONAME:
    case IOCP_EAINOADDR:
    case IOCP_EAITEMP:
        return SOCKS5_HOST_UNREACHABLE;
    case IOCP_EACCES:
    case IOCP_EPERM:
        return SOCKS5_NOT_ALLOWED;
    case IOCP_EAFNOSUPPORT:
        return SOCKS5_ATYP_UNSUPPORTED;
    default:
        return SOCKS5_FAILURE;
    }
}

void socks_session_unreachable(struct socks_session *s, int status)
{
    char why[340];
    snprintf(why, sizeof why, "SOCKS destination %s port %u: %s", s->req.host,
             (unsigned)s->req.port, iocp_strerror(status));
    refuse(s, reply_code(status), why);
}

bool socks_session_connected(struct socks_session *s, struct iocp_conn *target)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } a;
    socklen_t alen = sizeof a;
    memset(&a, 0, sizeof a);
    iocp_socket_t sock = iocp_conn_socket(target);
    if (s->req.atyp == 3 && !acl_empty(&s->cfg->to)) {
        /* A name: judged by the address it led to, before any byte. */
        if (getpeername(sock, &a.sa, &alen) != 0 || !acl_admits(&s->cfg->to, &a.sa)) {
            char why[340];
            snprintf(why, sizeof why, "SOCKS destination %s refused (--to-allow/--to-deny)",
                     s->req.host);
            refuse(s, SOCKS5_NOT_ALLOWED, why);
            return false;
        }
    }
    /* The answer names the relay's end of the tunnel, as RFC 1928 asks. */
    alen = sizeof a;
    memset(&a, 0, sizeof a);
    uint8_t out[32];
    size_t n;
    if (getsockname(sock, &a.sa, &alen) == 0 && a.sa.sa_family == AF_INET6)
        n = socks5_reply(out, SOCKS5_OK, (const uint8_t *)&a.in6.sin6_addr, 16,
                         ntohs(a.in6.sin6_port));
    else if (a.sa.sa_family == AF_INET)
        n = socks5_reply(out, SOCKS5_OK, (const uint8_t *)&a.in4.sin_addr, 4,
                         ntohs(a.in4.sin_port));
    else
        n = socks5_reply(out, SOCKS5_OK, NULL, 0, 0);
    reply(s, out, n);
    s->step = STEP_DONE;
    return true;
}
