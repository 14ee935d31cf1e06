/* SPDX-License-Identifier: MIT */
/*
 * relay_tls.h: the relay's two TLS sides, parsed and made here so that
 * relay.c only hands the contexts to its legs.
 */
#include "relay_tls.h"

#include "diag.h"
#include "stats_tls.h"

const char relay_tls_help[] =
    "      --tls-listen       terminate TLS from the clients, with --tls-cert FILE\n"
    "                         --tls-key FILE (or --tls-self-signed); also\n"
    "                         --tls-verify-client CA, --alpn LIST, --tls-min V\n"
    "      --tls-target       TLS to the targets, each verified against the system's\n"
    "                         CA store and its host name; sessions are resumed\n"
    "      --tls-target-ca FILE\n"
    "                         trust the CA certificates in FILE for the targets\n"
    "      --tls-target-insecure\n"
    "                         verify no target (no CA, no host name)\n"
    "      --tls-cert FILE    the relay's certificate chain for --tls-listen (PEM)\n"
    "      --tls-key FILE     its private key (PEM, readable by its owner only)\n"
    "      --tls-self-signed  an ephemeral certificate for localhost, its SHA-256\n"
    "                         fingerprint printed\n"
    "      --tls-verify-client CA\n"
    "                         clients need a certificate signed by CA\n"
    "      --alpn LIST        the protocols the clients may pick\n"
    "      --tls-min V        the clients' lowest TLS version: 1.2 or 1.3\n";

int relay_tls_option(struct relay_tls *rt, int opt, const char *arg)
{
    switch (opt) {
    case RELAY_TLS_OPT_LISTEN:
        rt->listen.on = true;
        return 1;
    case RELAY_TLS_OPT_TARGET:
        rt->target.on = true;
        return 1;
    case RELAY_TLS_OPT_TARGET_CA:
        rt->target.ca = arg;
        rt->target.given++;
        return 1;
    case RELAY_TLS_OPT_TARGET_INSECURE:
        rt->target.insecure = true;
        rt->target.given++;
        return 1;
    default:
        /* The rest are the listening side's. */
        return tls_option(&rt->listen, "relay", opt, arg);
    }
}

int relay_tls_start(struct relay_tls *rt, bool key_listen, bool key_target)
{
    int n = tls_conflicts(&rt->listen, "relay", CHANNEL_SERVER, "--tls-listen");
    if (!rt->target.on && rt->target.given) {
        diag_error("relay: --tls-target-ca and --tls-target-insecure need --tls-target");
        n++;
    } else {
        n += tls_conflicts(&rt->target, "relay", CHANNEL_CLIENT, "--tls-target");
    }
    if (rt->listen.on && key_listen) {
        diag_error("relay: --tls-listen and --key-listen exclude each other");
        n++;
    }
    if (rt->target.on && key_target) {
        diag_error("relay: --tls-target and --key-target exclude each other");
        n++;
    }
    if (n) {
        diag_try_help("relay");
        return EXIT_USAGE;
    }
    int st = 0;
    if (rt->listen.on)
        st = tls_ctx_new(&rt->listen_ctx, "relay", &rt->listen, CHANNEL_SERVER);
    if (!st && rt->target.on)
        st = tls_ctx_new(&rt->target_ctx, "relay", &rt->target, CHANNEL_CLIENT);
    if (st)
        relay_tls_free(rt);
    return st;
}

void relay_tls_free(struct relay_tls *rt)
{
    tls_ctx_free(rt->listen_ctx);
    tls_ctx_free(rt->target_ctx);
    rt->listen_ctx = rt->target_ctx = NULL;
}

/* ---- the stats endpoint's TLS section ---- */

void relay_tls_stats(struct relay_tls *rt)
{
    /* The relay's metrics keep their own names: iocptool_relay_tls_*. */
    static struct stats_tls st = {.metric = "relay_tls"};
    st.side[STATS_TLS_CLIENTS] = rt->listen_ctx;
    st.side[STATS_TLS_TARGETS] = rt->target_ctx;
    stats_tls_add(&st);
}
