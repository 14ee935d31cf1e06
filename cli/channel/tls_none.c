/* SPDX-License-Identifier: MIT */
/*
 * tls.h in a build without OpenSSL 3: --tls is refused with a message
 * (the options still parse, in tls_opts.c), and no channel is ever made.
 */
#include <string.h>

#include "diag.h"
#include "tls.h"

const char *tls_library(void)
{
    return NULL;
}

int tls_ctx_new(struct tls_ctx **out, const char *cmd, const struct tls_opts *o,
                enum channel_role role)
{
    (void)o;
    (void)role;
    *out = NULL;
    diag_error("%s: --tls: this iocptool was built without TLS (it needs OpenSSL 3)", cmd);
    return EXIT_USAGE;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    (void)ctx;
}

void tls_ctx_counts(struct tls_ctx *ctx, struct tls_counts *out)
{
    (void)ctx;
    memset(out, 0, sizeof *out);
}

void tls_ctx_count_timeout(struct tls_ctx *ctx)
{
    (void)ctx;
}

static const char *none_strerror(int err)
{
    (void)err;
    return "TLS is not built in";
}

static const struct channel_ops none_ops = {.name = "tls", .strerror = none_strerror};

bool channel_tls_agreed(const struct channel *ch, const char **protocol, const char **cipher,
                        bool *resumed)
{
    (void)ch;
    (void)protocol;
    (void)cipher;
    (void)resumed;
    return false;
}

int channel_tls_new(struct channel *ch, struct tls_ctx *ctx, const char *server_name)
{
    (void)ctx;
    (void)server_name;
    ch->ops = &none_ops;
    ch->state = NULL;
    return -1;
}
