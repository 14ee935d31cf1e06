/* SPDX-License-Identifier: MIT */
/*
 * stats_tls.h: the TLS section, written from the contexts' counters (which
 * any thread may read).
 */
#include "stats_tls.h"

#include "json.h"
#include "stats_sections.h"

static const char *const side_name[2] = {"clients", "targets"};

static void counts(const struct stats_tls *st, struct tls_counts c[2])
{
    for (int i = 0; i < 2; i++)
        tls_ctx_counts(st->side[i], &c[i]);
}

static void tls_text(void *arg, struct json_buf *b)
{
    const struct stats_tls *st = arg;
    struct tls_counts c[2];
    counts(st, c);
    for (int i = 0; i < 2; i++) {
        if (!st->side[i])
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
    const struct stats_tls *st = arg;
    struct tls_counts c[2];
    counts(st, c);
    json_printf(b, ",\"tls\":{");
    bool first = true;
    for (int i = 0; i < 2; i++) {
        if (!st->side[i])
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
    const struct stats_tls *st = arg;
    struct tls_counts c[2];
    counts(st, c);
    json_printf(b,
                "# HELP iocptool_%s_handshakes_total TLS handshakes done, per side.\n"
                "# TYPE iocptool_%s_handshakes_total counter\n",
                st->metric, st->metric);
    for (int i = 0; i < 2; i++)
        if (st->side[i])
            json_printf(b, "iocptool_%s_handshakes_total{side=\"%s\"} %llu\n", st->metric,
                        side_name[i], c[i].handshakes);
    json_printf(b,
                "# HELP iocptool_%s_failures_total TLS handshakes failed, per side and reason.\n"
                "# TYPE iocptool_%s_failures_total counter\n",
                st->metric, st->metric);
    for (int i = 0; i < 2; i++) {
        if (!st->side[i])
            continue;
        const char *why[] = {"certificate", "alert", "timeout", "other"};
        unsigned long long n[] = {c[i].failed_verify, c[i].failed_alert, c[i].failed_timeout,
                                  c[i].failed_other};
        for (int k = 0; k < 4; k++)
            json_printf(b, "iocptool_%s_failures_total{side=\"%s\",reason=\"%s\"} %llu\n",
                        st->metric, side_name[i], why[k], n[k]);
    }
}

void stats_tls_add(struct stats_tls *st)
{
    if (!st->side[0] && !st->side[1])
        return;
    struct stats_section s = {
        .text = tls_text,
        .json = tls_json,
        .prometheus = tls_prometheus,
        .arg = st,
    };
    stats_section_add(&s);
}
