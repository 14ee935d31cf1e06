/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the input side of the TLS channel
 * (cli/channel/channel_tls.c): what a peer sends goes through ->feed and
 * ->eof, in chunks the input chooses.  The first byte picks a mode:
 *
 *   0  bytes fed to a fresh server channel (ClientHello parsing onwards);
 *   1  bytes fed to a fresh client channel after its ClientHello
 *      (ServerHello, certificates, ...);
 *   2  a genuine handshake between a client and a server channel, then
 *      the input fed to the server as if the client had sent it.
 *
 * Without the peer's keys nobody can complete a handshake or forge a
 * record, so garbage that opens a channel (modes 0, 1) or yields plaintext
 * (any mode) is a bug, and aborts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "keyfile.h"
#include "tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What tls_ctx.c and channel_tls.c print, and the key file reader, are
 * not fuzzed here. */
int diag_verbosity = 0;

void diag_error(const char *fmt, ...)
{
    (void)fmt;
}

void diag_info(int level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

int keyfile_read(const char *cmd, const char *path, char *buf, size_t cap, size_t *len)
{
    (void)cmd;
    (void)path;
    (void)buf;
    (void)cap;
    *len = 0;
    return EXIT_USAGE;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_tls: property broken: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct tls_ctx *server_ctx, *client_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct tls_opts so = {.on = true, .self_signed = true};
    struct tls_opts co = {.on = true, .insecure = true};
    if (tls_ctx_new(&server_ctx, "fuzz", &so, CHANNEL_SERVER) != 0 ||
        tls_ctx_new(&client_ctx, "fuzz", &co, CHANNEL_CLIENT) != 0)
        abort();
    return 0;
}

static size_t plain_bytes;

static void plain(void *arg, const void *data, size_t len)
{
    (void)arg;
    (void)data;
    plain_bytes += len;
}

/* Feed data to ch in chunks whose sizes come from the input; the events. */
static int feed_all(struct channel *ch, const uint8_t *data, size_t size, int *events)
{
    size_t at = 0;
    while (at < size) {
        size_t chunk = 1 + data[at] % 64u * 37u;
        at++;
        if (chunk > size - at)
            chunk = size - at;
        int ev = ch->ops->feed(ch->state, data + at, chunk, plain, NULL);
        at += chunk;
        if (ev < 0)
            return ev;
        *events |= ev;
        size_t n;
        ch->ops->handshake_out(ch->state, &n); /* taken, as the leg does */
    }
    return 0;
}

/* Move what each side has to say to the other until both are quiet. */
static void converse(struct channel *c, struct channel *s, int *cev, int *sev)
{
    for (int round = 0; round < 8; round++) {
        size_t n1 = 0, n2 = 0;
        const void *out = c->ops->handshake_out(c->state, &n1);
        if (out) {
            int ev = s->ops->feed(s->state, out, n1, plain, NULL);
            CHECK(ev >= 0);
            *sev |= ev;
        }
        out = s->ops->handshake_out(s->state, &n2);
        if (out) {
            int ev = c->ops->feed(c->state, out, n2, plain, NULL);
            CHECK(ev >= 0);
            *cev |= ev;
        }
        if (!n1 && !n2)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    plain_bytes = 0;
    struct channel s = {0}, c = {0};
    int ev = 0;
    if (mode == 0) {
        CHECK(channel_tls_new(&s, server_ctx, NULL) == 0);
        feed_all(&s, data, size, &ev);
        CHECK(!(ev & CHANNEL_EV_OPEN));
        s.ops->eof(s.state);
    } else if (mode == 1) {
        CHECK(channel_tls_new(&c, client_ctx, "localhost") == 0);
        size_t n;
        CHECK(c.ops->handshake_out(c.state, &n) != NULL && n > 0);
        feed_all(&c, data, size, &ev);
        CHECK(!(ev & CHANNEL_EV_OPEN));
        c.ops->eof(c.state);
    } else {
        CHECK(channel_tls_new(&s, server_ctx, NULL) == 0);
        CHECK(channel_tls_new(&c, client_ctx, "localhost") == 0);
        int cev = 0, sev = 0;
        converse(&c, &s, &cev, &sev);
        CHECK(cev & CHANNEL_EV_OPEN);
        CHECK(sev & CHANNEL_EV_OPEN);
        feed_all(&s, data, size, &ev);
        s.ops->eof(s.state);
    }
    CHECK(plain_bytes == 0);
    if (s.ops)
        s.ops->free(s.state);
    if (c.ops)
        c.ops->free(c.state);
    return 0;
}
