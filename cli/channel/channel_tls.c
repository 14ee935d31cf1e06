/* SPDX-License-Identifier: MIT */
/*
 * channel.h's operations for TLS: one SSL object between two BIOs.  What
 * the connection received is handed to OpenSSL through the read BIO and
 * OpenSSL is asked for plaintext; what OpenSSL writes (handshake, records,
 * alerts, close_notify) goes through the write BIO into the caller's
 * hands.  OpenSSL never sees a socket, so it never blocks and it works the
 * same over io_uring, epoll and IOCP, on the connection's worker, like the
 * pre-shared-key channel.
 *
 * Neither BIO is a memory BIO: both are the channel's own.  The read BIO
 * hands OpenSSL the bytes of the current ->feed where they lie (a memory
 * BIO would copy every received byte once more, and move what is left to
 * its front); OpenSSL keeps the part of a record it has read in its own
 * buffer, so nothing stays in the BIO between calls.  The write BIO puts
 * what OpenSSL writes during ->seal and ->finish straight into the
 * caller's room, behind any handshake bytes still waiting, and everything
 * else (handshake, alerts) into a buffer for ->handshake_out: the records
 * are copied once, not into a memory BIO and out again.
 *
 * Ends (docs/EOF.md): ->finish is close_notify (our direction ends; we
 * keep reading, as TLS 1.3 allows and OpenSSL supports); the peer's
 * close_notify is CHANNEL_EV_END; a TCP EOF without it is a cut stream,
 * an error, never an end (a truncation would otherwise pass for the whole).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "diag.h"
#include "tls_ctx.h"

enum tls_error {
    TLS_EFAIL = -1,    /* a handshake or record failure: see the message */
    TLS_ECUT = -2,     /* EOF without close_notify */
    TLS_EHSCUT = -3,   /* EOF during the handshake */
    TLS_ENOSPC = -4,   /* more output than the caller's room */
    TLS_ENOMEM = -5,
    TLS_ENOTOPEN = -6, /* seal or finish before the handshake is done */
    TLS_EENDED = -7,   /* seal after finish */
};

struct tls_chan {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    const unsigned char *in; /* what ->feed has not handed OpenSSL yet */
    size_t in_len;
    struct tls_ctx *ctx;
    bool open, peer_ended, ended, counted;
    bool bulk; /* the last seal filled whole records: buffers kept */
    int err;
    unsigned char *hs; /* bytes written outside ->seal, for ->handshake_out */
    size_t hs_len, hs_cap;
    unsigned char *out; /* ->seal's or ->finish's room while it runs */
    size_t out_len, out_cap;
    bool out_over; /* more than that room: the call fails */
    char *host; /* the server name checked, for messages and resumption */
    char msg[320];
};

static const char *tls_strerror(int err)
{
    switch (err) {
    case TLS_EFAIL:
        return "TLS failed";
    case TLS_ECUT:
        return "TLS: the peer closed the connection without close_notify (the data may be "
               "truncated)";
    case TLS_EHSCUT:
        return "TLS: the peer closed the connection during the handshake";
    case TLS_ENOSPC:
        return "TLS: more output than room for it";
    case TLS_ENOMEM:
        return "TLS: out of memory";
    case TLS_ENOTOPEN:
        return "TLS: the handshake is not done";
    case TLS_EENDED:
        return "TLS: our direction has ended";
    default:
        return "TLS: unknown error";
    }
}

static const char *tls_error_text(void *state, int err)
{
    struct tls_chan *t = state;
    if (t && t->msg[0] && err == t->err)
        return t->msg;
    return tls_strerror(err);
}

static void count_failure(struct tls_chan *t, int kind)
{
    if (t->counted)
        return;
    t->counted = true;
    atomic_fetch_add(&t->ctx->failed[kind], 1);
}

/* Fail for good with OpenSSL's reason: the certificate check's verdict
 * when that is what failed, the peer's alert, or the library's reason. */
static int fail(struct tls_chan *t, int ssl_err)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    long vr = SSL_get_verify_result(t->ssl);
    int kind = TLS_FAIL_OTHER;
    if (vr != X509_V_OK && !SSL_session_reused(t->ssl) &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        kind = TLS_FAIL_VERIFY;
        if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            const char *host = SSL_get_app_data(t->ssl);
            snprintf(t->msg, sizeof t->msg,
                     "TLS: certificate verify failed: the certificate is not for %s (%s)",
                     host ? host : "this host", X509_verify_cert_error_string(vr));
        } else {
            snprintf(t->msg, sizeof t->msg, "TLS: certificate verify failed: %s",
                     X509_verify_cert_error_string(vr));
        }
    } else if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET) {
        /* "tlsv13 alert certificate required", "tlsv1 alert unknown ca" */
        kind = TLS_FAIL_ALERT;
        snprintf(t->msg, sizeof t->msg, "TLS: the peer refused: %s", reason ? reason : "alert");
    } else if (e && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        kind = TLS_FAIL_VERIFY;
        snprintf(t->msg, sizeof t->msg, "TLS: the client sent no certificate (one is required)");
    } else if (e && vr != X509_V_OK && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        kind = TLS_FAIL_VERIFY;
        snprintf(t->msg, sizeof t->msg, "TLS: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (reason) {
        snprintf(t->msg, sizeof t->msg, "TLS %s: %s", t->open ? "failed" : "handshake failed",
                 reason);
    } else {
        snprintf(t->msg, sizeof t->msg, "TLS %s (SSL error %d)",
                 t->open ? "failed" : "handshake failed", ssl_err);
    }
    ERR_clear_error();
    if (!t->open)
        count_failure(t, kind);
    t->err = TLS_EFAIL;
    return t->err;
}

/* The bytes OpenSSL wrote outside ->seal, handed out whole: NULL when
 * there are none. */
static const void *tls_handshake_out(void *state, size_t *len)
{
    struct tls_chan *t = state;
    *len = t->hs_len;
    t->hs_len = 0;
    return *len ? t->hs : NULL;
}

/* The handshake is done: count it, and say what was agreed at -v. */
static void opened(struct tls_chan *t)
{
    t->open = true;
    t->counted = true;
    atomic_fetch_add(&t->ctx->handshakes, 1);
    if (SSL_session_reused(t->ssl))
        atomic_fetch_add(&t->ctx->resumed, 1);
    if (diag_verbosity < 1)
        return;
    char subject[256] = "none";
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
        X509_free(peer);
    }
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    diag_info(1, "%s: TLS: %s, %s, peer %s, ALPN %.*s%s%s", t->ctx->cmd, SSL_get_version(t->ssl),
              SSL_get_cipher_name(t->ssl), subject, (int)alpn_len, alpn ? (const char *)alpn : "",
              alpn ? "" : "none", SSL_session_reused(t->ssl) ? ", resumed" : "");
}

/* The read BIO: the bytes of the ->feed in progress, then "retry". */
static int feed_bio_read(BIO *b, char *out, size_t want, size_t *got)
{
    struct tls_chan *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t || t->in_len == 0) {
        BIO_set_retry_read(b);
        *got = 0;
        return 0;
    }
    size_t n = want < t->in_len ? want : t->in_len;
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    *got = n;
    return 1;
}

/* Append to the bytes waiting for ->handshake_out: false when out of
 * memory. */
static bool hs_append(struct tls_chan *t, const void *data, size_t len)
{
    if (len > t->hs_cap - t->hs_len) {
        size_t cap = t->hs_cap ? t->hs_cap : 2048;
        while (cap - t->hs_len < len)
            cap *= 2;
        unsigned char *p = realloc(t->hs, cap);
        if (!p)
            return false;
        t->hs = p;
        t->hs_cap = cap;
    }
    memcpy(t->hs + t->hs_len, data, len);
    t->hs_len += len;
    return true;
}

/* The write BIO: into ->seal's room while it runs, else into hs. */
static int feed_bio_write(BIO *b, const char *data, size_t len, size_t *done)
{
    struct tls_chan *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *done = 0;
    if (!t)
        return 0;
    if (t->out) {
        if (len > t->out_cap - t->out_len) {
            t->out_over = true;
            return 0;
        }
        memcpy(t->out + t->out_len, data, len);
        t->out_len += len;
    } else if (!hs_append(t, data, len)) {
        return 0;
    }
    *done = len;
    return 1;
}

static long feed_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct tls_chan *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_PENDING: /* the read BIO's; the write BIO keeps nothing */
        return t && b == t->rbio && t->in_len < LONG_MAX ? (long)t->in_len : 0;
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0; /* no EOF here: the connection's EOF is ->eof */
    }
}

static int feed_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

BIO_METHOD *channel_tls_feed_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "iocptool feed");
    if (m && (!BIO_meth_set_read_ex(m, feed_bio_read) || !BIO_meth_set_write_ex(m, feed_bio_write) ||
              !BIO_meth_set_ctrl(m, feed_bio_ctrl) ||
              !BIO_meth_set_create(m, feed_bio_create))) {
        BIO_meth_free(m);
        m = NULL;
    }
    return m;
}

static int feed_ssl(struct tls_chan *t, channel_plain_cb cb, void *arg);

static int tls_feed(void *state, const void *in, size_t len, channel_plain_cb cb, void *arg)
{
    struct tls_chan *t = state;
    if (t->err)
        return t->err;
    t->in = in;
    t->in_len = len;
    int ev = feed_ssl(t, cb, arg);
    /* OpenSSL has taken every byte it will (a partial record sits in its
     * buffer); bytes after the peer's close_notify, or after a failure,
     * are dropped. */
    t->in = NULL;
    t->in_len = 0;
    return ev;
}

static int feed_ssl(struct tls_chan *t, channel_plain_cb cb, void *arg)
{
    int ev = 0;
    while (!t->open) {
        size_t before = t->in_len;
        int r = SSL_do_handshake(t->ssl);
        if (r == 1) {
            opened(t);
            ev |= CHANNEL_EV_OPEN;
            break;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ)
            return fail(t, e);
        /* OpenSSL wants more than it was given; had it stopped early
         * (it does not), the rest would still be its to take. */
        if (t->in_len == 0 || t->in_len == before)
            break;
    }
    if (t->open && !t->peer_ended) {
        unsigned char buf[16384];
        for (;;) {
            size_t got = 0, before = t->in_len;
            if (SSL_read_ex(t->ssl, buf, sizeof buf, &got) == 1) {
                cb(arg, buf, got);
                /* The callback may have sealed (an echo) or failed us. */
                if (t->err)
                    return t->err;
                continue;
            }
            int e = SSL_get_error(t->ssl, 0);
            if (e == SSL_ERROR_WANT_READ) {
                /* With SSL_MODE_AUTO_RETRY (set in tls_ctx.c) only an
                 * empty read BIO ends SSL_read this way. */
                if (t->in_len > 0 && t->in_len < before)
                    continue;
                break;
            }
            if (e == SSL_ERROR_ZERO_RETURN) {
                t->peer_ended = true;
                ev |= CHANNEL_EV_END;
                break;
            }
            return fail(t, e);
        }
    }
    if (t->hs_len > 0)
        ev |= CHANNEL_EV_SEND;
    return ev;
}

static int tls_eof(void *state)
{
    struct tls_chan *t = state;
    if (t->err)
        return t->err;
    if (t->peer_ended)
        return 0;
    if (!t->open)
        count_failure(t, TLS_FAIL_OTHER);
    t->err = t->open ? TLS_ECUT : TLS_EHSCUT;
    return t->err;
}

/* From here until room_done(), what OpenSSL writes goes into out, after
 * the handshake bytes not yet handed out (an alert or a ticket written
 * during ->feed must go before the records that follow it). */
static int room_open(struct tls_chan *t, void *out, size_t cap)
{
    if (cap > INT_MAX)
        cap = INT_MAX;
    if (t->hs_len > cap)
        return t->err = TLS_ENOSPC;
    memcpy(out, t->hs, t->hs_len);
    t->out = out;
    t->out_len = t->hs_len;
    t->out_cap = cap;
    t->out_over = false;
    t->hs_len = 0;
    return 0;
}

/* The bytes now in out, or TLS_ENOSPC if they did not fit. */
static int room_done(struct tls_chan *t)
{
    t->out = NULL;
    if (t->out_over)
        return t->err = TLS_ENOSPC;
    return (int)t->out_len;
}

static int tls_seal(void *state, const void *plain, size_t len, void *out, size_t cap)
{
    struct tls_chan *t = state;
    if (t->err)
        return t->err;
    if (!t->open)
        return TLS_ENOTOPEN;
    if (t->ended)
        return TLS_EENDED;
    if (room_open(t, out, cap) < 0)
        return t->err;
    /* SSL_MODE_RELEASE_BUFFERS (tls_ctx.c) gives OpenSSL's record buffers
     * (some 34 KiB) back to the allocator after every call: what an idle
     * connection wants, and what a bulk sender pays for dearly (the
     * allocator trims the worker's heap and faults it back in on every
     * call: a third of the CPU of a stream out of a terminator).  A sender
     * that fills whole records keeps them; one that writes less than a
     * record (interactive, or the tail of a transfer) gives them back. */
    bool bulk = len >= SSL3_RT_MAX_PLAIN_LENGTH;
    if (bulk != t->bulk) {
        t->bulk = bulk;
        if (bulk)
            SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
        else
            SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
    }
    if (len > 0) {
        size_t written = 0;
        int ok = SSL_write_ex(t->ssl, plain, len, &written) == 1 && written == len;
        int n = room_done(t);
        if (n < 0)
            return n;
        if (!ok) {
            /* The caller drops out on an error: what is in it (an alert)
             * goes out through ->handshake_out as the leg fails. */
            hs_append(t, out, (size_t)n);
            return fail(t, SSL_get_error(t->ssl, 0));
        }
        /* Back from bulk: the buffers go now (unless a partial record
         * is being read into them; then with the next read). */
        if (!bulk && !SSL_free_buffers(t->ssl))
            ERR_clear_error();
        return n;
    }
    return room_done(t);
}

static int tls_finish(void *state, void *out, size_t cap)
{
    struct tls_chan *t = state;
    if (t->err)
        return t->err;
    if (!t->open)
        return TLS_ENOTOPEN;
    if (t->ended)
        return TLS_EENDED;
    t->ended = true;
    if (room_open(t, out, cap) < 0)
        return t->err;
    /* 0: close_notify written, the peer's still to come; 1: both done. */
    int r = SSL_shutdown(t->ssl);
    int n = room_done(t);
    if (n < 0)
        return n;
    if (r < 0) {
        hs_append(t, out, (size_t)n);
        return fail(t, SSL_get_error(t->ssl, -1));
    }
    return n;
}

static void tls_timed_out(void *state)
{
    struct tls_chan *t = state;
    count_failure(t, TLS_FAIL_TIMEOUT);
}

static void tls_free(void *state)
{
    struct tls_chan *t = state;
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t->hs);
    free(t->host);
    free(t);
}

static const struct channel_ops tls_ops = {
    .name = "tls",
    .handshake_out = tls_handshake_out,
    .feed = tls_feed,
    .eof = tls_eof,
    .seal = tls_seal,
    .finish = tls_finish,
    .strerror = tls_strerror,
    .error_text = tls_error_text,
    .timed_out = tls_timed_out,
    .free = tls_free,
};

static bool is_address(const char *host)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
    ASN1_OCTET_STRING_free(ip);
    return ip != NULL;
}

bool channel_tls_agreed(const struct channel *ch, const char **protocol, const char **cipher,
                        bool *resumed)
{
    if (ch->ops != &tls_ops || !ch->state)
        return false;
    const struct tls_chan *t = ch->state;
    if (!t->open)
        return false;
    *protocol = SSL_get_version(t->ssl);
    *cipher = SSL_get_cipher_name(t->ssl);
    *resumed = SSL_session_reused(t->ssl) != 0;
    return true;
}

int channel_tls_new(struct channel *ch, struct tls_ctx *ctx, const char *server_name)
{
    ch->ops = &tls_ops;
    ch->state = NULL;
    struct tls_chan *t = calloc(1, sizeof *t);
    if (!t)
        return TLS_ENOMEM;
    t->ctx = ctx;
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(ctx->feed_bio);
    t->wbio = BIO_new(ctx->feed_bio);
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return TLS_ENOMEM;
    }
    BIO_set_data(t->rbio, t);
    BIO_set_data(t->wbio, t);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    ch->state = t;
    if (ctx->role == CHANNEL_SERVER) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (server_name) {
        /* The name the certificate is checked against; a numeric address
         * is checked as an address and sent without SNI (RFC 6066). */
        size_t len = strlen(server_name) + 1;
        t->host = malloc(len);
        if (!t->host)
            return t->err = TLS_ENOMEM;
        memcpy(t->host, server_name, len);
        SSL_set_app_data(t->ssl, t->host);
        bool addr = is_address(server_name);
        int ok = addr ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name)
                      : SSL_set1_host(t->ssl, server_name) &&
                            SSL_set_tlsext_host_name(t->ssl, server_name);
        if (ok != 1) {
            t->err = fail(t, 0);
            return t->err;
        }
        tls_ctx_resume(ctx, t->ssl, server_name);
    }
    /* The ClientHello, into the write BIO for ->handshake_out. */
    int r = SSL_do_handshake(t->ssl);
    if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ)
        return fail(t, SSL_get_error(t->ssl, r));
    return 0;
}
