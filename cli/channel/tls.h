/* SPDX-License-Identifier: MIT */
/*
 * TLS for the subcommands: the --tls options, and the context (one
 * OpenSSL SSL_CTX with what the options asked for) from which every
 * connection's TLS channel (channel_tls.c) is made.
 *
 *   options:  add TLS_CLIENT_LONG_OPTIONS or TLS_SERVER_LONG_OPTIONS to the
 *             subcommand's table and give
 *             each option to tls_option(); tls_conflicts() once all are
 *             read; then tls_ctx_new() for a context when opts.on.
 *   a leg:    leg_layer.tls = ctx (and .server_name for a client): the
 *             leg makes the channel with channel_tls_new().
 *
 * A client verifies the server by default, against the system's CA store
 * (tls_ca_posix.c, tls_ca_win.c) or --tls-ca, and checks that the
 * certificate is for the host it connects to; SNI carries the host name.
 * A server may ask for client certificates (--tls-verify-client CA).
 *
 * tls_ctx.c has the OpenSSL side; tls_none.c stands in for it in a build
 * without OpenSSL 3 and refuses --tls with a message.  The options parse
 * the same in both (tls_opts.c), so --help and the completions do not
 * depend on the build.
 */
#ifndef IOCPTOOL_TLS_H
#define IOCPTOOL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "channel.h"

/* The long-only option codes: a range of their own, far from the
 * subcommands' own codes. */
enum {
    TLS_OPT_TLS = 0x5400,
    TLS_OPT_INSECURE,
    TLS_OPT_CA,
    TLS_OPT_CERT,
    TLS_OPT_KEY,
    TLS_OPT_ALPN,
    TLS_OPT_MIN,
    TLS_OPT_VERIFY_CLIENT,
    TLS_OPT_SELF_SIGNED,
    TLS_OPT_END,
};

/* The struct option entries: a client's (connect, relay's targets) and a
 * server's (listen, relay's clients). */
#define TLS_CLIENT_LONG_OPTIONS                                                                    \
    {"tls", no_argument, NULL, TLS_OPT_TLS}, {"tls-insecure", no_argument, NULL, TLS_OPT_INSECURE}, \
        {"tls-ca", required_argument, NULL, TLS_OPT_CA},                                           \
        {"tls-cert", required_argument, NULL, TLS_OPT_CERT},                                       \
        {"tls-key", required_argument, NULL, TLS_OPT_KEY},                                         \
        {"alpn", required_argument, NULL, TLS_OPT_ALPN},                                           \
    {                                                                                              \
        "tls-min", required_argument, NULL, TLS_OPT_MIN                                            \
    }
#define TLS_SERVER_LONG_OPTIONS                                                                    \
    {"tls", no_argument, NULL, TLS_OPT_TLS}, {"tls-cert", required_argument, NULL, TLS_OPT_CERT},   \
        {"tls-key", required_argument, NULL, TLS_OPT_KEY},                                         \
        {"tls-self-signed", no_argument, NULL, TLS_OPT_SELF_SIGNED},                               \
        {"tls-verify-client", required_argument, NULL, TLS_OPT_VERIFY_CLIENT},                     \
        {"alpn", required_argument, NULL, TLS_OPT_ALPN},                                           \
    {                                                                                              \
        "tls-min", required_argument, NULL, TLS_OPT_MIN                                            \
    }

/* What the options asked for; zero-initialised means no TLS. */
struct tls_opts {
    bool on;                   /* --tls */
    bool insecure;             /* --tls-insecure: no verification at all */
    bool self_signed;          /* --tls-self-signed (server) */
    int min_version;           /* --tls-min: 12, 13, or 0 (OpenSSL's floor, 1.2) */
    const char *ca;            /* --tls-ca FILE: trust these, not the system's */
    const char *cert, *key;    /* --tls-cert, --tls-key: our certificate (PEM) */
    const char *alpn;          /* --alpn h2,http/1.1 */
    const char *verify_client; /* --tls-verify-client CA (server) */
    unsigned given;            /* how many TLS options were given, --tls aside */
};

/*
 * tls_option(o, cmd, opt, arg):
 * Handle one option.  1: a TLS option, taken; 0: not one; -1: a bad value
 * (said as "iocptool: CMD: ...").
 */
int tls_option(struct tls_opts *o, const char *cmd, int opt, const char *arg);

/*
 * tls_conflicts(o, cmd, role, what):
 * One message per contradiction (an option for the other role, a
 * certificate without its key, a TLS option without --tls); how many.
 * what names the TLS switch in messages ("--tls", "--tls-listen").
 */
int tls_conflicts(const struct tls_opts *o, const char *cmd, enum channel_role role,
                  const char *what);

/* The help lines of the client's and of the server's options. */
extern const char tls_client_help[];
extern const char tls_server_help[];

/* "OpenSSL 3.0.19 27 Jan 2026", or NULL when TLS is not built in. */
const char *tls_library(void);

struct tls_ctx;

/* What a context has counted, for stats: handshakes done, failed, resumed. */
struct tls_counts {
    unsigned long long handshakes, resumed, failed;
    unsigned long long failed_verify;  /* the peer's certificate was refused */
    unsigned long long failed_alert;   /* the peer refused ours, or us */
    unsigned long long failed_timeout; /* the handshake deadline passed */
    unsigned long long failed_other;   /* not TLS, cut, protocol errors */
};

/*
 * tls_ctx_new(out, cmd, o, role):
 * The context for every connection of one side.  Reads the files (key
 * files must be private to their owner, as --key files are), makes the
 * ephemeral certificate of --tls-self-signed and prints its fingerprint,
 * loads the CA store.  0, or the exit status with the reason printed
 * (EXIT_USAGE: a file or option is wrong, or TLS is not built in).
 * With --tls-insecure it says on stderr that nothing is verified.
 */
int tls_ctx_new(struct tls_ctx **out, const char *cmd, const struct tls_opts *o,
                enum channel_role role);

void tls_ctx_free(struct tls_ctx *ctx);

/* The counts so far (any thread). */
void tls_ctx_counts(struct tls_ctx *ctx, struct tls_counts *out);

/* A handshake that did not end in time: counted with the failures. */
void tls_ctx_count_timeout(struct tls_ctx *ctx);

/*
 * channel_tls_new(ch, ctx, server_name):
 * A TLS channel for one connection (client or server, as ctx).  A client
 * sends SNI and checks the certificate against server_name (a name or a
 * numeric address; NULL: no check); its ClientHello is ready in
 * ->handshake_out.  0, or a negative error for ->strerror.
 */
int channel_tls_new(struct channel *ch, struct tls_ctx *ctx, const char *server_name);

/*
 * channel_tls_agreed(ch, protocol, cipher):
 * What a TLS channel's finished handshake agreed on ("TLSv1.3",
 * "TLS_AES_256_GCM_SHA384": strings that live as long as the process),
 * and whether the session was resumed.  false when ch is not a TLS
 * channel whose handshake is done.
 */
bool channel_tls_agreed(const struct channel *ch, const char **protocol, const char **cipher,
                        bool *resumed);

#endif /* IOCPTOOL_TLS_H */
