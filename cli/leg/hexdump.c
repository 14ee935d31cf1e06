/* SPDX-License-Identifier: MIT */
/*
 * -x FILE: the hex dump.  One line per 16 bytes:
 *
 *   ID DIR OFFSET  HEX (16 bytes)  |ASCII|
 *
 * where ID is the connection's ID (as stats lists it), DIR is '<' for
 * bytes received from the peer and '>' for bytes sent to it, and OFFSET
 * (hex) counts that direction's bytes from 0.  Lines starting with '#'
 * say when a connection opens (its addresses) and closes (its totals).
 * The worker copies the bytes into a record; the sink's thread formats.
 */
#include <stdio.h>
#include <string.h>

#include "capture_internal.h"

#define HEX_BUFFER (4u << 20)

enum { HEX_IN, HEX_OUT, HEX_OPEN, HEX_CLOSE };

struct hex_rec {
    uint64_t id, offset, in, out;
    uint8_t kind;
};

static void emit(void *ctx, const unsigned char *rec, size_t len, struct record_out *out)
{
    (void)ctx;
    struct hex_rec h;
    memcpy(&h, rec, sizeof h);
    const unsigned char *p = rec + sizeof h;
    size_t n = len - sizeof h;
    char line[160];
    int k;
    if (h.kind == HEX_OPEN) {
        k = snprintf(line, sizeof line, "# %llu open: %.*s\n", (unsigned long long)h.id, (int)n,
                     (const char *)p);
        record_out_put(out, line, (size_t)k);
        return;
    }
    if (h.kind == HEX_CLOSE) {
        k = snprintf(line, sizeof line, "# %llu closed: %llu bytes received, %llu sent\n",
                     (unsigned long long)h.id, (unsigned long long)h.in,
                     (unsigned long long)h.out);
        record_out_put(out, line, (size_t)k);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    char dir = h.kind == HEX_IN ? '<' : '>';
    for (size_t at = 0; at < n; at += 16) {
        size_t row = n - at < 16 ? n - at : 16;
        k = snprintf(line, sizeof line, "%llu %c %08llx  ", (unsigned long long)h.id, dir,
                     (unsigned long long)(h.offset + at));
        char *q = line + k;
        for (size_t i = 0; i < 16; i++) {
            if (i < row) {
                *q++ = hex[p[at + i] >> 4];
                *q++ = hex[p[at + i] & 15];
            } else {
                *q++ = ' ';
                *q++ = ' ';
            }
            *q++ = ' ';
            if (i == 7)
                *q++ = ' ';
        }
        *q++ = ' ';
        *q++ = '|';
        for (size_t i = 0; i < row; i++) {
            unsigned char c = p[at + i];
            *q++ = c >= 0x20 && c < 0x7f ? (char)c : '.';
        }
        *q++ = '|';
        *q++ = '\n';
        record_out_put(out, line, (size_t)(q - line));
    }
}

struct record_sink *hexdump_open(const char *path, stats_counter_t *dropped)
{
    return record_sink_open(path, HEX_BUFFER, emit, NULL, dropped);
}

void hexdump_conn(struct record_sink *k, const struct capture_conn *cc, bool open)
{
    struct hex_rec h = {.id = cc->id, .in = cc->in, .out = cc->out,
                        .kind = open ? HEX_OPEN : HEX_CLOSE};
    char text[200];
    int n = 0;
    if (open)
        n = snprintf(text, sizeof text, "%s (peer), %s (local), %s", cc->peer_text,
                     cc->local_text, cc->peer_opened ? "accepted" : "connected");
    record_sink_put(k, &h, sizeof h, text, n > 0 ? (size_t)n : 0);
}

void hexdump_data(struct record_sink *k, const struct capture_conn *cc, bool from_peer,
                  const void *data, size_t len)
{
    struct hex_rec h = {.id = cc->id, .offset = from_peer ? cc->in : cc->out,
                        .kind = from_peer ? HEX_IN : HEX_OUT};
    record_sink_put(k, &h, sizeof h, data, len);
}
