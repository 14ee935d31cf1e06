/* SPDX-License-Identifier: MIT */
/*
 * The system's CA store on POSIX: OpenSSL's default paths (Debian:
 * /etc/ssl/certs, kept by ca-certificates; SSL_CERT_FILE and SSL_CERT_DIR
 * override them).
 */
#include "diag.h"
#include "tls_ctx.h"

int tls_system_ca(SSL_CTX *ctx, const char *cmd)
{
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        diag_error("%s: TLS: cannot load the system's CA certificates", cmd);
        return -1;
    }
    return 0;
}
