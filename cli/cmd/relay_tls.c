/* SPDX-License-Identifier: MIT */
/*
 * relay_tls.h: the relay's two TLS sides, parsed and made here so that
 * relay.c only hands the contexts to its legs.
 */
#include "relay_tls.h"

#include "diag.h"
#include "json.h"
#include "stats_sections.h"

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

void relay_tls_counts(const struct relay_tls *rt, struct tls_counts *listen,
                      struct tls_counts *target)
{
    tls_ctx_counts(rt->listen_ctx, listen);
    tls_ctx_counts(rt->target_ctx, target);
}

void relay_tls_free(struct relay_tls *rt)
{
    tls_ctx_free(rt->listen_ctx);
    tls_ctx_free(rt->target_ctx);
    rt->listen_ctx = rt->target_ctx = NULL;
}

/* ---- the stats endpoint's TLS section ---- */

static const char *const side_name[2] = {"clients", "targets"};

static void both(void *arg, struct tls_counts c[2])
{
    relay_tls_counts(arg, &c[0], &c[1]);
}

static bool side_on(const struct relay_tls *rt, int i)
{
    return i == 0 ? rt->listen_ctx != NULL : rt->target_ctx != NULL;
}

static void tls_text(void *arg, struct json_buf *b)
{
    struct tls_counts c[2];
    both(arg, c);
    for (int i = 0; i < 2; i++) {
        if (!side_on(arg, i))
            continue;
        json_printf(b,
                    "tls %-8s %llu handshakes (%llu resumed), %llu failed: %llu certificate, "
                    "%llu alert, %llu timeout, %llu other\n",
                    side_name[i], c[i].handshakes, c[i].resumed, c[i].failed, c[i].failed_verify,
                    c[i].failed_alert, c[i].failed_timeout, c[i].failed_other);
    }
}

static void tls_json(void *arg, struct json_buf *b)
{
    struct tls_counts c[2];
    both(arg, c);
    json_printf(b, ",\"tls\":{");
    bool first = true;
    for (int i = 0; i < 2; i++) {
        if (!side_on(arg, i))
            continue;
        json_printf(b,
                    "%s\"%s\":{\"handshakes\":%llu,\"resumed\":%llu,\"failed\":%llu,"
                    "\"failed_certificate\":%llu,\"failed_alert\":%llu,\"failed_timeout\":%llu,"
                    "\"failed_other\":%llu}",
                    first ? "" : ",", side_name[i], c[i].handshakes, c[i].resumed, c[i].failed,
                    c[i].failed_verify, c[i].failed_alert, c[i].failed_timeout, c[i].failed_other);
        first = false;
    }
    json_printf(b, "}");
}

static void tls_prometheus(void *arg, struct json_buf *b)
{
    struct tls_counts c[2];
    both(arg, c);
    json_printf(b, "# HELP iocptool_relay_tls_handshakes_total TLS handshakes done, per side.\n"
                   "# TYPE iocptool_relay_tls_handshakes_total counter\n");
    for (int i = 0; i < 2; i++)
        if (side_on(arg, i))
            json_printf(b, "iocptool_relay_tls_handshakes_total{side=\"%s\"} %llu\n",
                        side_name[i], c[i].handshakes);
    json_printf(b, "# HELP iocptool_relay_tls_failures_total TLS handshakes failed, per side "
                   "and reason.\n"
                   "# TYPE iocptool_relay_tls_failures_total counter\n");
    for (int i = 0; i < 2; i++) {
        if (!side_on(arg, i))
            continue;
        const char *why[] = {"certificate", "alert", "timeout", "other"};
        unsigned long long n[] = {c[i].failed_verify, c[i].failed_alert, c[i].failed_timeout,
                                  c[i].failed_other};
        for (int k = 0; k < 4; k++)
            json_printf(b, "iocptool_relay_tls_failures_total{side=\"%s\",reason=\"%s\"} %llu\n",
                        side_name[i], why[k], n[k]);
    }
}

void relay_tls_stats(struct relay_tls *rt)
{
    if (!rt->listen_ctx && !rt->target_ctx)
        return;
    struct stats_section s = {
        .text = tls_text,
        .json = tls_json,
        .prometheus = tls_prometheus,
        .arg = rt,
    };
    stats_section_add(&s);
}
