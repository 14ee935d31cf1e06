/* SPDX-License-Identifier: MIT */
/*
 * The proxy step of an outgoing connection: between the connect to the
 * proxy and the caller's on_open, ask the proxy for a tunnel to the target.
 *
 * A connect that names a proxy goes to the proxy with the handler below and
 * a negotiation state as its data (iocp__proxy_wrap, called by client.c).
 * That handler sends the first request when the proxy's connection opens,
 * feeds what comes back to the parsers of proxy_socks.c and proxy_http.c,
 * answers each step, and, once the tunnel stands, puts the caller's handler
 * and data back on the connection, calls its on_open and delivers the bytes
 * that came after the proxy's reply.  On failure the caller's on_close runs
 * with the error, and iocp_error_detail() (this thread's) says what failed.
 *
 * The connect's time-out covers the negotiation: a timer of the worker's
 * heap, due at the connect's start plus timeout_ms, so a proxy that accepts
 * and then says nothing ends in IOCP_ETIMEDOUT, never a hang.
 *
 * Everything after iocp__proxy_wrap runs on the connection's worker.
 */
#include "proxy_step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wire.h"
#include "unixsock.h"

enum step {
    STEP_CONNECTING, /* to the proxy */
    STEP_CHOICE,     /* SOCKS5: waiting for the method */
    STEP_AUTH,       /* SOCKS5: waiting for the password's verdict */
    STEP_REPLY,      /* waiting for the answer to CONNECT */
};

struct proxy_state {
    const struct iocp_conn_handler *user;
    void *user_data;
    int kind;
    bool remote_dns;
    char *proxy_host;
    uint16_t proxy_port;
    char *target_name;
    struct iocp__proxy_target target;
    char *username, *password;
    unsigned timeout_ms;
    enum step step;
    struct iocp_conn *c;
    struct iocp_heap_timer timer;
    char why[IOCP_PROXY_WHY_MAX];
    size_t have;
    uint8_t in[IOCP_PROXY_REPLY_MAX];
};

static const char *kind_name(int kind)
{
    switch (kind) {
    case IOCP_PROXY_SOCKS4:
        return "SOCKS4";
    case IOCP_PROXY_SOCKS4A:
        return "SOCKS4a";
    case IOCP_PROXY_SOCKS5:
        return "SOCKS5";
    default:
        return "HTTP";
    }
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    /* Credentials do not outlive their use in freed memory. */
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

static void state_free(struct proxy_state *st)
{
    free(st->proxy_host);
    free(st->target_name);
    wipe_free(st->username);
    wipe_free(st->password);
    free(st);
}

/* ---- failing ---- */

static void fail(struct proxy_state *st, int code)
{
    iocp__conn_fail(st->c, code);
}

static void on_deadline(struct iocp_heap_timer *t)
{
    struct proxy_state *st = iocp_container_of(t, struct proxy_state, timer);
    struct iocp_conn *c = st->c;
    iocp__conn_enter(c);
    snprintf(st->why, sizeof st->why, "%s: no answer from the proxy within %u ms",
             kind_name(st->kind), st->timeout_ms);
    fail(st, IOCP_ETIMEDOUT);
    iocp__conn_leave(c);
}

/* ---- the steps ---- */

static int send_bytes(struct proxy_state *st, const void *data, int len)
{
    if (len < 0) {
        snprintf(st->why, sizeof st->why, "%s: cannot build the request for this target",
                 kind_name(st->kind));
        return len;
    }
    return iocp_conn_send(st->c, data, (size_t)len);
}

static int send_connect(struct proxy_state *st)
{
    uint8_t req[IOCP_PROXY_REQUEST_MAX];
    int n;
    switch (st->kind) {
    case IOCP_PROXY_SOCKS5:
        n = iocp__socks5_connect(req, sizeof req, &st->target);
        break;
    case IOCP_PROXY_SOCKS4:
    case IOCP_PROXY_SOCKS4A:
        n = iocp__socks4_connect(req, sizeof req, &st->target, st->username,
                                 st->kind == IOCP_PROXY_SOCKS4A);
        break;
    default:
        n = iocp__http_connect((char *)req, sizeof req, &st->target, st->username,
                               st->password);
        break;
    }
    int rc = send_bytes(st, req, n);
    memset(req, 0, sizeof req);
    st->step = STEP_REPLY;
    return rc;
}

static void negotiator_open(struct iocp_conn *c)
{
    struct proxy_state *st = iocp_conn_data(c);
    st->c = c;
    if (st->timeout_ms) {
        int rc = iocp__timer_start(c->w, &st->timer, c->created_ms + st->timeout_ms);
        if (rc < 0) {
            fail(st, rc);
            return;
        }
    }
    int rc;
    if (st->kind == IOCP_PROXY_SOCKS5) {
        uint8_t hello[4];
        rc = send_bytes(st, hello, (int)iocp__socks5_hello(hello, st->username != NULL));
        st->step = STEP_CHOICE;
    } else {
        rc = send_connect(st);
    }
    if (rc < 0)
        fail(st, rc);
}

/* The tunnel stands: the connection is the caller's from here on. */
static void hand_over(struct proxy_state *st, const uint8_t *extra, size_t extra_len)
{
    struct iocp_conn *c = st->c;
    iocp__timer_stop(c->w, &st->timer);
    c->handler = st->user;
    c->data = st->user_data;
    if (c->handler->on_open)
        c->handler->on_open(c);
    /* What the target sent right after the proxy's reply. */
    uint32_t gone = IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING;
    if (st->have && !(c->flags & gone))
        c->handler->on_data(c, st->in, st->have);
    if (extra_len && !(c->flags & gone))
        c->handler->on_data(c, extra, extra_len);
    state_free(st);
}

/* Parse what has come for the current step: > 0 taken, 0 more needed,
 * < 0 failed (why set). */
static int parse_step(struct proxy_state *st, int *method)
{
    switch (st->step) {
    case STEP_CHOICE:
        return iocp__socks5_parse_choice(st->in, st->have, st->username != NULL, method, st->why,
                                         sizeof st->why);
    case STEP_AUTH:
        return iocp__socks5_parse_auth(st->in, st->have, st->why, sizeof st->why);
    case STEP_REPLY:
        if (st->kind == IOCP_PROXY_SOCKS5)
            return iocp__socks5_parse_reply(st->in, st->have, st->why, sizeof st->why);
        if (st->kind == IOCP_PROXY_HTTP)
            return iocp__http_parse_reply(st->in, st->have, st->why, sizeof st->why);
        return iocp__socks4_parse_reply(st->in, st->have, st->why, sizeof st->why);
    default:
        return IOCP_EPROTO;
    }
}

static void negotiator_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct proxy_state *st = iocp_conn_data(c);
    if (c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING))
        return;
    /* Take what fits; a reply never needs more than the buffer, and bytes
     * beyond it are the target's, delivered after the hand-over. */
    size_t room = sizeof st->in - st->have;
    size_t take = len < room ? len : room;
    memcpy(st->in + st->have, data, take);
    st->have += take;
    const uint8_t *extra = (const uint8_t *)data + take;
    size_t extra_len = len - take;

    for (;;) {
        int method = 0;
        int rc = parse_step(st, &method);
        if (rc < 0) {
            fail(st, rc);
            return;
        }
        if (rc == 0) {
            if (extra_len) {
                /* Unreachable by the parsers' bounds; kept as a guard. */
                snprintf(st->why, sizeof st->why, "%s: the proxy's reply is too long",
                         kind_name(st->kind));
                fail(st, IOCP_EMSGSIZE);
            }
            return;
        }
        st->have -= (size_t)rc;
        memmove(st->in, st->in + rc, st->have);
        enum step done = st->step;
        if (done == STEP_REPLY) {
            hand_over(st, extra, extra_len);
            return;
        }
        int sent;
        if (done == STEP_CHOICE && method == IOCP_SOCKS5_USERPASS) {
            uint8_t req[3 + 2 * IOCP_PROXY_CRED_MAX];
            sent = send_bytes(st, req, iocp__socks5_auth(req, sizeof req, st->username,
                                                        st->password));
            memset(req, 0, sizeof req);
            st->step = STEP_AUTH;
        } else {
            sent = send_connect(st);
        }
        if (sent < 0) {
            fail(st, sent);
            return;
        }
    }
}

static void negotiator_eof(struct iocp_conn *c)
{
    struct proxy_state *st = iocp_conn_data(c);
    snprintf(st->why, sizeof st->why, "%s: the proxy closed the connection during the negotiation",
             kind_name(st->kind));
    fail(st, IOCP_ECONNRESET);
}

static void negotiator_close(struct iocp_conn *c, int status)
{
    struct proxy_state *st = iocp_conn_data(c);
    iocp__timer_stop(c->w, &st->timer);
    c->handler = st->user;
    c->data = st->user_data;
    if (st->why[0]) {
        iocp__set_error_detail("%s", st->why);
    } else if (status < 0) {
        /* The proxy itself could not be reached, or the engine stopped. */
        char port[8];
        snprintf(port, sizeof port, "%u", (unsigned)st->proxy_port);
        bool v6 = strchr(st->proxy_host, ':') != NULL;
        iocp__set_error_detail("%s proxy %s%s%s:%s: %s", kind_name(st->kind), v6 ? "[" : "",
                               st->proxy_host, v6 ? "]" : "", port, iocp_strerror(status));
    }
    state_free(st);
    c->handler->on_close(c, status);
}

static const struct iocp_conn_handler negotiator = {
    .on_open = negotiator_open,
    .on_data = negotiator_data,
    .on_eof = negotiator_eof,
    .on_close = negotiator_close,
};

/* ---- set-up (any thread) ---- */

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = true;
    return d;
}

/* A numeric address into t->ip; false for a name. */
static bool parse_numeric(const char *host, struct iocp__proxy_target *t)
{
    struct addrinfo hints, *res = NULL;
    iocp__connect_hints(&hints, AF_UNSPEC, true);
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return false;
    bool ok = true;
    if (res->ai_family == AF_INET) {
        memcpy(t->ip, &((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr, 4);
        t->ip_len = 4;
    } else if (res->ai_family == AF_INET6) {
        memcpy(t->ip, &((const struct sockaddr_in6 *)(const void *)res->ai_addr)->sin6_addr, 16);
        t->ip_len = 16;
    } else {
        ok = false;
    }
    freeaddrinfo(res);
    return ok;
}

static int check_proxy(const struct iocp_proxy *p, size_t target_len, bool unix_target)
{
    if (p->kind < IOCP_PROXY_SOCKS4 || p->kind > IOCP_PROXY_HTTP) {
        iocp__set_error_detail("proxy: unknown kind %d", p->kind);
        return IOCP_EINVAL;
    }
    if (!p->host || !*p->host || p->port == 0) {
        iocp__set_error_detail("proxy: a host and a port other than 0 are required");
        return IOCP_EINVAL;
    }
    size_t ulen = p->username ? strlen(p->username) : 0;
    size_t plen = p->password ? strlen(p->password) : 0;
    if (ulen > IOCP_PROXY_CRED_MAX || plen > IOCP_PROXY_CRED_MAX) {
        iocp__set_error_detail("proxy: the user name and the password take at most %u bytes each",
                               IOCP_PROXY_CRED_MAX);
        return IOCP_EINVAL;
    }
    if (p->username && !ulen && p->kind == IOCP_PROXY_SOCKS5) {
        iocp__set_error_detail("proxy: SOCKS5 needs a non-empty user name with a password");
        return IOCP_EINVAL;
    }
    if (p->password && (p->kind == IOCP_PROXY_SOCKS4 || p->kind == IOCP_PROXY_SOCKS4A)) {
        iocp__set_error_detail("proxy: SOCKS4 has a user ID but no password");
        return IOCP_EINVAL;
    }
    if (p->password && !p->username) {
        iocp__set_error_detail("proxy: a password needs a user name");
        return IOCP_EINVAL;
    }
    if (p->username && p->kind == IOCP_PROXY_HTTP && memchr(p->username, ':', ulen)) {
        iocp__set_error_detail("proxy: an HTTP Basic user name cannot hold ':'");
        return IOCP_EINVAL;
    }
    if (unix_target) {
        iocp__set_error_detail("proxy: a Unix-domain socket is not reached through a proxy");
        return IOCP_EINVAL;
    }
    if (target_len > IOCP_PROXY_NAME_MAX) {
        iocp__set_error_detail("proxy: the target's name is longer than %u bytes",
                               IOCP_PROXY_NAME_MAX);
        return IOCP_EINVAL;
    }
    return 0;
}

int iocp__proxy_wrap(struct iocp_connect_config *cfg, const char **lookup_name,
                     int *lookup_family)
{
    const struct iocp_proxy *p = cfg->proxy;
    *lookup_name = NULL;
    *lookup_family = AF_UNSPEC;
    int rc = check_proxy(p, strlen(cfg->host), iocp__unix_host(cfg->host));
    if (rc < 0)
        return rc;
    struct proxy_state *st = calloc(1, sizeof *st);
    if (!st)
        return IOCP_ENOMEM;
    bool oom = false;
    st->user = cfg->handler;
    st->user_data = cfg->data;
    st->kind = p->kind;
    st->remote_dns = p->remote_dns;
    st->proxy_host = dup_or_null(p->host, &oom);
    st->proxy_port = p->port;
    st->target_name = dup_or_null(cfg->host, &oom);
    st->username = dup_or_null(p->username, &oom);
    st->password = dup_or_null(p->password, &oom);
    st->timeout_ms = cfg->timeout_ms;
    st->step = STEP_CONNECTING;
    iocp__timer_init(&st->timer, on_deadline);
    if (oom) {
        state_free(st);
        return IOCP_ENOMEM;
    }

    st->target.port = cfg->port;
    bool numeric = parse_numeric(st->target_name, &st->target);
    if (p->kind == IOCP_PROXY_HTTP) {
        /* The proxy resolves; the request line carries the host as given. */
        st->target.ip_len = 0;
        st->target.name = st->target_name;
    } else if (numeric) {
        if (st->target.ip_len == 16 && p->kind != IOCP_PROXY_SOCKS5) {
            iocp__set_error_detail("proxy: SOCKS4 cannot reach an IPv6 address (%s)",
                                   st->target_name);
            state_free(st);
            return IOCP_EINVAL;
        }
    } else if (p->kind == IOCP_PROXY_SOCKS4A ||
               (p->kind == IOCP_PROXY_SOCKS5 && p->remote_dns)) {
        st->target.name = st->target_name;
    } else {
        *lookup_name = st->target_name;
        *lookup_family = p->kind == IOCP_PROXY_SOCKS4          ? AF_INET
                         : cfg->family == IOCP_FAMILY_IPV4 ? AF_INET
                         : cfg->family == IOCP_FAMILY_IPV6 ? AF_INET6
                                                           : AF_UNSPEC;
    }

    cfg->host = st->proxy_host;
    cfg->port = st->proxy_port;
    cfg->handler = &negotiator;
    cfg->data = st;
    cfg->proxy = NULL;
    return 0;
}

void iocp__proxy_abandon(const struct iocp_connect_config *cfg)
{
    if (cfg->handler == &negotiator)
        state_free(cfg->data);
}

int iocp__proxy_resolved(struct iocp_conn *c, int error, const struct addrinfo *res)
{
    struct proxy_state *st = iocp_conn_data(c);
    st->c = c;
    for (const struct addrinfo *ai = res; error == 0 && ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            memcpy(st->target.ip, &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr,
                   4);
            st->target.ip_len = 4;
            return 0;
        }
        if (ai->ai_family == AF_INET6 && st->kind == IOCP_PROXY_SOCKS5) {
            memcpy(st->target.ip,
                   &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr, 16);
            st->target.ip_len = 16;
            return 0;
        }
    }
    if (error == 0)
        error = IOCP_EAINOADDR;
    snprintf(st->why, sizeof st->why, "%s: the target %s: %s", kind_name(st->kind),
             st->target_name, iocp_strerror(error));
    fail(st, error);
    return error;
}
