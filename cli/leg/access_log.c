/* SPDX-License-Identifier: MIT */
/* access_log.h: lines formatted on the workers, written by record_sink. */
#include "access_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "diag.h"
#include "record_sink.h"
#include "stats_sections.h"

/* Lines buffered at most by default (in each of the sink's two buffers):
 * about 16,000 lines of JSON, a few seconds of a busy relay. */
#define LOG_BUFFER (4u << 20)
#define LOG_CLOSE_WAIT_MS 2000
#define LINE_MAX 1024

static struct {
    struct record_sink *sink;
    bool text;
    stats_counter_t lines, dropped;
} alog;

const char *conn_end_name(enum conn_end end)
{
    static const char *const names[] = {"eof", "reset", "timeout", "refused", "drained"};
    return (unsigned)end < sizeof names / sizeof names[0] ? names[end] : "unknown";
}

static void emit_line(void *ctx, const unsigned char *rec, size_t len, struct record_out *out)
{
    (void)ctx;
    record_out_put(out, rec, len);
}

bool access_log_open(const char *path, bool text, unsigned kib)
{
    stats_counter_register("log_lines", "Access log lines written or queued.", &alog.lines);
    stats_counter_register("log_dropped", "Access log lines dropped: the log was behind.",
                           &alog.dropped);
    alog.text = text;
    alog.sink = record_sink_open(path, kib ? (size_t)kib << 10 : LOG_BUFFER, emit_line, NULL, &alog.dropped);
    if (!alog.sink) {
        diag_error("relay: --log %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

bool access_log_enabled(void)
{
    return alog.sink != NULL;
}

void access_log_close(void)
{
    record_sink_close(alog.sink, LOG_CLOSE_WAIT_MS);
    alog.sink = NULL;
}

uint64_t access_log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t access_log_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "2026-12-07T01:23:45.678Z" from milliseconds since the epoch, by the
 * civil-from-days arithmetic (no gmtime: the same on every platform). */
static void format_time(uint64_t ms, char *buf, size_t len)
{
    uint64_t secs = ms / 1000;
    long long days = (long long)(secs / 86400);
    unsigned sod = (unsigned)(secs % 86400);
    days += 719468;
    long long era = days / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    snprintf(buf, len, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d, sod / 3600,
             sod / 60 % 60, sod % 60, (unsigned)(ms % 1000));
}

/* A JSON string (quotes included); control characters escaped. */
static size_t json_quoted(char *out, size_t room, const char *s)
{
    size_t n = 0;
    if (!s) {
        return (size_t)snprintf(out, room, "null");
    }
    if (n < room)
        out[n++] = '"';
    for (; *s && n + 7 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, room - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    if (n < room)
        out[n++] = '"';
    if (n < room)
        out[n] = '\0';
    return n;
}

/* One side's handshake as part of a line, "" without TLS.  JSON:
 * ,"KEY":{"protocol":"TLSv1.3","cipher":"...","resumed":false} or
 * ,"KEY":{"error":"..."}; text: ", [LABEL]TLSv1.3 CIPHER[ resumed]" or
 * ", [LABEL]why". */
static size_t format_tls(const struct access_tls *t, const char *key, const char *label,
                         char *out, size_t room)
{
    int n = 0;
    out[0] = '\0';
    if (t->protocol && t->cipher) {
        if (alog.text) {
            n = snprintf(out, room, ", %s%s %s%s", label, t->protocol, t->cipher,
                         t->resumed ? " resumed" : "");
        } else {
            char proto[40], cipher[120];
            json_quoted(proto, sizeof proto, t->protocol);
            json_quoted(cipher, sizeof cipher, t->cipher);
            n = snprintf(out, room, ",\"%s\":{\"protocol\":%s,\"cipher\":%s,\"resumed\":%s}", key,
                         proto, cipher, t->resumed ? "true" : "false");
        }
    } else if (t->error) {
        if (alog.text) {
            n = snprintf(out, room, ", %s%s", label, t->error);
        } else {
            char why[340];
            json_quoted(why, sizeof why, t->error);
            n = snprintf(out, room, ",\"%s\":{\"error\":%s}", key, why);
        }
    }
    return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

void access_log_write(const struct access_entry *e)
{
    if (!alog.sink)
        return;
    char when[40], line[LINE_MAX], tls[800];
    format_time(access_log_now_ms(), when, sizeof when);
    size_t used = format_tls(&e->client_tls, "tls", "", tls, sizeof tls);
    format_tls(&e->target_tls, "target_tls", "to the target ", tls + used, sizeof tls - used);
    int n;
    if (alog.text) {
        n = snprintf(line, sizeof line,
                     "%s %s -> %s -> %s %s, %llu bytes from the client, %llu to it, "
                     "%llu.%03llu s, #%llu%s\n",
                     when, e->client, e->listen, e->target ? e->target : "-",
                     conn_end_name(e->end), (unsigned long long)e->from_client,
                     (unsigned long long)e->to_client,
                     (unsigned long long)(e->duration_ms / 1000),
                     (unsigned long long)(e->duration_ms % 1000), (unsigned long long)e->id, tls);
    } else {
        char client[160], listen[160], target[300];
        json_quoted(client, sizeof client, e->client);
        json_quoted(listen, sizeof listen, e->listen);
        json_quoted(target, sizeof target, e->target);
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"id\":%llu,\"client\":%s,\"listen\":%s,\"target\":%s,"
                     "\"bytes_from_client\":%llu,\"bytes_to_client\":%llu,\"duration_ms\":%llu,"
                     "\"end\":\"%s\"%s}\n",
                     when, (unsigned long long)e->id, client, listen, target,
                     (unsigned long long)e->from_client, (unsigned long long)e->to_client,
                     (unsigned long long)e->duration_ms, conn_end_name(e->end), tls);
    }
    if (n <= 0 || (size_t)n >= sizeof line)
        return;
    if (record_sink_put(alog.sink, line, (size_t)n, NULL, 0))
        stats_counter_add(&alog.lines, 1);
}
