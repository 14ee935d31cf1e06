/* SPDX-License-Identifier: MIT */
/*
 * The inside of tls.h's context, shared by tls_ctx.c, channel_tls.c and
 * the CA store loaders (tls_ca_posix.c, tls_ca_win.c).  OpenSSL builds only.
 */
#ifndef IOCPTOOL_TLS_CTX_H
#define IOCPTOOL_TLS_CTX_H

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/ssl.h>

#include "tls.h"

enum { TLS_FAIL_VERIFY, TLS_FAIL_ALERT, TLS_FAIL_TIMEOUT, TLS_FAIL_OTHER, TLS_FAIL_KINDS };

struct tls_ctx {
    SSL_CTX *ssl;
    enum channel_role role;
    const char *cmd;
    unsigned char *alpn; /* ALPN wire format, or NULL */
    unsigned alpn_len;
    BIO_METHOD *feed_bio; /* channel_tls.c's read BIO, made once */
    atomic_ullong handshakes, resumed;
    atomic_ullong failed[TLS_FAIL_KINDS];
    /* A client's last session, for the next connection to the same host. */
    pthread_mutex_t session_lock;
    SSL_SESSION *session;
    char session_host[256];
};

/* The method of the read BIO every channel of a context uses: NULL when
 * OpenSSL cannot make one. */
BIO_METHOD *channel_tls_feed_method(void);

/* Offer the session kept for host on ssl, if there is one. */
void tls_ctx_resume(struct tls_ctx *t, SSL *ssl, const char *host);

/* Trust the system's CA store: 0, or -1 with the reason printed. */
int tls_system_ca(SSL_CTX *ctx, const char *cmd);

#endif /* IOCPTOOL_TLS_CTX_H */
