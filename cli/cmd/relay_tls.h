/* SPDX-License-Identifier: MIT */
/*
 * relay's TLS: --tls-listen terminates TLS from the clients (a server
 * context, with --tls-cert/--tls-key or --tls-self-signed, and optionally
 * --tls-verify-client, --alpn, --tls-min), --tls-target originates TLS to
 * the targets (a client context: each target verified against the
 * system's CA store or --tls-target-ca, and its host name checked, unless
 * --tls-target-insecure; sessions resumed).  Both together re-encrypt.
 * The contexts are made once the options are all read; the legs take them
 * through leg_layer.tls (tls.h).
 */
#ifndef IOCPTOOL_RELAY_TLS_H
#define IOCPTOOL_RELAY_TLS_H

#include <stdbool.h>

#include "tls.h"

enum {
    RELAY_TLS_OPT_LISTEN = TLS_OPT_END + 1,
    RELAY_TLS_OPT_TARGET,
    RELAY_TLS_OPT_TARGET_CA,
    RELAY_TLS_OPT_TARGET_INSECURE,
};

#define RELAY_TLS_LONG_OPTIONS                                                                     \
    {"tls-listen", no_argument, NULL, RELAY_TLS_OPT_LISTEN},                                       \
        {"tls-target", no_argument, NULL, RELAY_TLS_OPT_TARGET},                                   \
        {"tls-target-ca", required_argument, NULL, RELAY_TLS_OPT_TARGET_CA},                       \
        {"tls-target-insecure", no_argument, NULL, RELAY_TLS_OPT_TARGET_INSECURE},                 \
        {"tls-cert", required_argument, NULL, TLS_OPT_CERT},                                       \
        {"tls-key", required_argument, NULL, TLS_OPT_KEY},                                         \
        {"tls-self-signed", no_argument, NULL, TLS_OPT_SELF_SIGNED},                               \
        {"tls-verify-client", required_argument, NULL, TLS_OPT_VERIFY_CLIENT},                     \
        {"alpn", required_argument, NULL, TLS_OPT_ALPN},                                           \
    {                                                                                              \
        "tls-min", required_argument, NULL, TLS_OPT_MIN                                            \
    }

struct relay_tls {
    struct tls_opts listen, target; /* as given */
    struct tls_ctx *listen_ctx, *target_ctx;
};

extern const char relay_tls_help[];

/* One option: 1 taken, 0 not a TLS option, -1 a bad value (said). */
int relay_tls_option(struct relay_tls *rt, int opt, const char *arg);

/* Check the options and make the contexts: 0, or the exit status with the
 * reason said.  With a key option on the same side: a usage error. */
int relay_tls_start(struct relay_tls *rt, bool key_listen, bool key_target);

/* Add the TLS section to the stats endpoint's reports (before it starts). */
void relay_tls_stats(struct relay_tls *rt);

void relay_tls_free(struct relay_tls *rt);

#endif /* IOCPTOOL_RELAY_TLS_H */
