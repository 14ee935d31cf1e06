/* SPDX-License-Identifier: MIT */
/*
 * tls.h's context on OpenSSL 3: one SSL_CTX per side, made once before the
 * engine starts and read-only after that, except for the counters (atomic)
 * and the client's session to resume (under a lock: every worker may open
 * a connection to a target).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "diag.h"
#include "keyfile.h"
#include "tls.h"
#include "tls_ctx.h"

/* A PEM private key is read whole through keyfile_read (which refuses
 * files others can read); a bigger file is not a key. */
#define KEY_FILE_MAX ((size_t)64 * 1024)

const char *tls_library(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

/* OpenSSL's reason for the last failure, for "CMD: FILE: reason". */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown error";
}

static int load_key(struct tls_ctx *t, const char *cmd, const char *path)
{
    char *buf = malloc(KEY_FILE_MAX);
    if (!buf) {
        diag_error("%s: out of memory", cmd);
        return EXIT_RUNTIME;
    }
    size_t len = 0;
    int status = keyfile_read(cmd, path, buf, KEY_FILE_MAX, &len);
    if (status == 0) {
        BIO *bio = BIO_new_mem_buf(buf, (int)len);
        EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pk) {
            diag_error("%s: --tls-key %s: not a PEM private key (%s)", cmd, path, ssl_reason());
            status = EXIT_USAGE;
        } else if (SSL_CTX_use_PrivateKey(t->ssl, pk) != 1) {
            diag_error("%s: --tls-key %s: %s", cmd, path, ssl_reason());
            status = EXIT_USAGE;
        } else if (SSL_CTX_check_private_key(t->ssl) != 1) {
            diag_error("%s: --tls-key %s: does not match the certificate of --tls-cert", cmd,
                       path);
            ERR_clear_error();
            status = EXIT_USAGE;
        }
        EVP_PKEY_free(pk);
    }
    OPENSSL_cleanse(buf, KEY_FILE_MAX);
    free(buf);
    return status;
}

/* --tls-self-signed: a P-256 key and a certificate for localhost,
 * 127.0.0.1 and ::1, valid from an hour ago for a day. */
static int self_signed(struct tls_ctx *t, const char *cmd)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int ok = pk && x;
    if (ok) {
        unsigned char serial[16];
        BIGNUM *bn = NULL;
        ok = RAND_bytes(serial, sizeof serial) == 1;
        serial[0] &= 0x7f; /* a positive serial */
        if (ok)
            bn = BN_bin2bn(serial, sizeof serial, NULL);
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
        BN_free(bn);
    }
    if (ok) {
        X509_NAME *name = X509_get_subject_name(x);
        ok = X509_set_version(x, X509_VERSION_3) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"localhost", -1, -1, 0) &&
             X509_set_issuer_name(x, name) && X509_set_pubkey(x, pk);
    }
    if (ok) {
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(
            NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
        ok = ext && X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ok = ok && X509_sign(x, pk, EVP_sha256()) > 0 && SSL_CTX_use_certificate(t->ssl, x) == 1 &&
         SSL_CTX_use_PrivateKey(t->ssl, pk) == 1;
    if (ok) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        char hex[3 * EVP_MAX_MD_SIZE + 1] = "";
        X509_digest(x, EVP_sha256(), md, &n);
        for (unsigned i = 0; i < n; i++)
            snprintf(hex + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
        diag_error("%s: --tls-self-signed: certificate for localhost, SHA-256 fingerprint %s",
                   cmd, hex);
    } else {
        diag_error("%s: --tls-self-signed: cannot make a certificate: %s", cmd, ssl_reason());
    }
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok ? 0 : EXIT_RUNTIME;
}

/* "h2,http/1.1" in the wire format of ALPN: each name after its length. */
static int alpn_wire(struct tls_ctx *t, const char *list)
{
    size_t n = strlen(list);
    t->alpn = malloc(n + 1);
    if (!t->alpn)
        return -1;
    size_t at = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        t->alpn[at] = (unsigned char)len;
        memcpy(t->alpn + at + 1, p, len);
        at += len + 1;
        p += len;
        if (*p == ',')
            p++;
    }
    t->alpn_len = (unsigned)at;
    return 0;
}

/* A server picks the first of its own protocols that the client offers;
 * none in common is the fatal alert RFC 7301 asks for. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    struct tls_ctx *t = arg;
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, t->alpn, t->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* A client keeps the last session a server gave it, to resume the next
 * connection to that server with it (a relay's connections to a target). */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_ctx *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *host = SSL_get_app_data(ssl);
    if (!t || !host || strlen(host) >= sizeof t->session_host)
        return 0;
    pthread_mutex_lock(&t->session_lock);
    SSL_SESSION_free(t->session);
    t->session = sess;
    strcpy(t->session_host, host);
    pthread_mutex_unlock(&t->session_lock);
    return 1; /* the reference is ours now */
}

void tls_ctx_resume(struct tls_ctx *t, SSL *ssl, const char *host)
{
    if (t->role != CHANNEL_CLIENT || !host)
        return;
    pthread_mutex_lock(&t->session_lock);
    if (t->session && !strcmp(t->session_host, host))
        SSL_set_session(ssl, t->session);
    pthread_mutex_unlock(&t->session_lock);
}

static int configure(struct tls_ctx *t, const char *cmd, const struct tls_opts *o)
{
    SSL_CTX *s = t->ssl;
    SSL_CTX_set_app_data(s, t);
    if (o->min_version == 13)
        SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION);
    else
        SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    /* The channel's BIOs keep nothing between calls, so OpenSSL's own
     * buffers can go while a connection is idle; a record written is
     * written whole.  AUTO_RETRY (OpenSSL's default, said here because
     * channel_tls.c relies on it): a read goes past records that carry no
     * data, so it stops only when the read BIO is empty. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_AUTO_RETRY);

    if (o->cert) {
        if (SSL_CTX_use_certificate_chain_file(s, o->cert) != 1) {
            diag_error("%s: --tls-cert %s: %s", cmd, o->cert, ssl_reason());
            return EXIT_USAGE;
        }
        int st = load_key(t, cmd, o->key);
        if (st)
            return st;
    }
    if (t->role == CHANNEL_SERVER) {
        if (o->self_signed) {
            int st = self_signed(t, cmd);
            if (st)
                return st;
        }
        if (o->verify_client) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->verify_client);
            if (!names || SSL_CTX_load_verify_locations(s, o->verify_client, NULL) != 1) {
                sk_X509_NAME_pop_free(names, X509_NAME_free);
                diag_error("%s: --tls-verify-client %s: no CA certificate in it (%s)", cmd,
                           o->verify_client, ssl_reason());
                return EXIT_USAGE;
            }
            SSL_CTX_set_client_CA_list(s, names);
            SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
        if (o->alpn)
            SSL_CTX_set_alpn_select_cb(s, alpn_select, t);
        /* The session ID context lets clients resume with us. */
        SSL_CTX_set_session_id_context(s, (const unsigned char *)"iocptool", 8);
    } else {
        if (o->insecure) {
            SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
            diag_error("%s: --tls-insecure: the server's certificate and name are NOT verified",
                       cmd);
        } else {
            if (o->ca) {
                if (SSL_CTX_load_verify_locations(s, o->ca, NULL) != 1) {
                    diag_error("%s: --tls-ca %s: %s", cmd, o->ca, ssl_reason());
                    return EXIT_USAGE;
                }
            } else if (tls_system_ca(s, cmd) != 0) {
                return EXIT_RUNTIME;
            }
            SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
        }
        if (o->alpn && SSL_CTX_set_alpn_protos(s, t->alpn, t->alpn_len) != 0) {
            diag_error("%s: --alpn %s: %s", cmd, o->alpn, ssl_reason());
            return EXIT_USAGE;
        }
        SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT |
                                              SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(s, new_session);
    }
    return 0;
}

int tls_ctx_new(struct tls_ctx **out, const char *cmd, const struct tls_opts *o,
                enum channel_role role)
{
    *out = NULL;
    struct tls_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        diag_error("%s: out of memory", cmd);
        return EXIT_RUNTIME;
    }
    t->role = role;
    t->cmd = cmd;
    pthread_mutex_init(&t->session_lock, NULL);
    t->ssl = SSL_CTX_new(role == CHANNEL_SERVER ? TLS_server_method() : TLS_client_method());
    t->feed_bio = channel_tls_feed_method();
    if (!t->ssl || !t->feed_bio || (o->alpn && alpn_wire(t, o->alpn) < 0)) {
        diag_error("%s: TLS: %s", cmd, ssl_reason());
        tls_ctx_free(t);
        return EXIT_RUNTIME;
    }
    int st = configure(t, cmd, o);
    if (st) {
        tls_ctx_free(t);
        return st;
    }
    *out = t;
    return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t)
        return;
    SSL_SESSION_free(t->session);
    SSL_CTX_free(t->ssl);
    BIO_meth_free(t->feed_bio);
    pthread_mutex_destroy(&t->session_lock);
    free(t->alpn);
    free(t);
}

void tls_ctx_counts(struct tls_ctx *t, struct tls_counts *c)
{
    memset(c, 0, sizeof *c);
    if (!t)
        return;
    c->handshakes = atomic_load(&t->handshakes);
    c->resumed = atomic_load(&t->resumed);
    c->failed_verify = atomic_load(&t->failed[TLS_FAIL_VERIFY]);
    c->failed_alert = atomic_load(&t->failed[TLS_FAIL_ALERT]);
    c->failed_timeout = atomic_load(&t->failed[TLS_FAIL_TIMEOUT]);
    c->failed_other = atomic_load(&t->failed[TLS_FAIL_OTHER]);
    c->failed = c->failed_verify + c->failed_alert + c->failed_timeout + c->failed_other;
}

void tls_ctx_count_timeout(struct tls_ctx *t)
{
    atomic_fetch_add(&t->failed[TLS_FAIL_TIMEOUT], 1);
}
