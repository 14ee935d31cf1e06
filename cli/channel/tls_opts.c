/* SPDX-License-Identifier: MIT */
/*
 * tls.h: the --tls options, the same in every build.
 */
#include <string.h>

#include "diag.h"
#include "tls.h"

const char tls_client_help[] =
    "      --tls              TLS (OpenSSL 3): the server is verified against the\n"
    "                         system's CA store and its certificate must name HOST\n"
    "      --tls-ca FILE      trust the CA certificates in FILE (PEM) instead\n"
    "      --tls-insecure     verify nothing (no CA, no host name): says so on stderr\n"
    "      --tls-cert FILE    a client certificate (PEM), with --tls-key FILE,\n"
    "      --tls-key FILE     its private key (PEM, readable by its owner only)\n"
    "      --alpn LIST        offer these protocols (comma-separated: h2,http/1.1)\n"
    "      --tls-min V        the lowest TLS version: 1.2 (default) or 1.3\n";

const char tls_server_help[] =
    "      --tls              TLS (OpenSSL 3), with --tls-cert and --tls-key\n"
    "      --tls-cert FILE    the server's certificate chain (PEM)\n"
    "      --tls-key FILE     its private key (PEM, readable by its owner only)\n"
    "      --tls-self-signed  an ephemeral certificate for localhost; its SHA-256\n"
    "                         fingerprint is printed on stderr\n"
    "      --tls-verify-client CA\n"
    "                         mutual TLS: clients need a certificate signed by CA\n"
    "      --alpn LIST        the protocols to accept, in our order of preference\n"
    "      --tls-min V        the lowest TLS version: 1.2 (default) or 1.3\n";

/* "h2,http/1.1": names of 1..255 bytes, no empty one. */
static bool alpn_valid(const char *list)
{
    size_t n = 0;
    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (n == 0 || n > 255)
                return false;
            n = 0;
            if (*p == '\0')
                return true;
        } else {
            n++;
        }
    }
}

int tls_option(struct tls_opts *o, const char *cmd, int opt, const char *arg)
{
    if (opt < TLS_OPT_TLS || opt >= TLS_OPT_END)
        return 0;
    if (opt != TLS_OPT_TLS)
        o->given++;
    switch (opt) {
    case TLS_OPT_TLS:
        o->on = true;
        break;
    case TLS_OPT_INSECURE:
        o->insecure = true;
        break;
    case TLS_OPT_CA:
        o->ca = arg;
        break;
    case TLS_OPT_CERT:
        o->cert = arg;
        break;
    case TLS_OPT_KEY:
        o->key = arg;
        break;
    case TLS_OPT_ALPN:
        if (!alpn_valid(arg)) {
            diag_error("%s: --alpn %s: expected protocol names separated by commas "
                       "(h2,http/1.1)",
                       cmd, arg);
            return -1;
        }
        o->alpn = arg;
        break;
    case TLS_OPT_MIN:
        if (!strcmp(arg, "1.2")) {
            o->min_version = 12;
        } else if (!strcmp(arg, "1.3")) {
            o->min_version = 13;
        } else {
            diag_error("%s: --tls-min %s: expected 1.2 or 1.3", cmd, arg);
            return -1;
        }
        break;
    case TLS_OPT_VERIFY_CLIENT:
        o->verify_client = arg;
        break;
    case TLS_OPT_SELF_SIGNED:
        o->self_signed = true;
        break;
    default:
        break;
    }
    return 1;
}

int tls_conflicts(const struct tls_opts *o, const char *cmd, enum channel_role role,
                  const char *what)
{
    int n = 0;
    if (!o->on) {
        if (o->given) {
            diag_error("%s: the --tls-* and --alpn options need %s", cmd, what);
            n++;
        }
        return n;
    }
    bool server = role == CHANNEL_SERVER;
    if (server && (o->insecure || o->ca)) {
        diag_error("%s: %s: --tls-insecure and --tls-ca are for verifying a server "
                   "(--tls-verify-client CA checks clients)",
                   cmd, what);
        n++;
    }
    if (!server && (o->self_signed || o->verify_client)) {
        diag_error("%s: %s: --tls-self-signed and --tls-verify-client are for a server", cmd,
                   what);
        n++;
    }
    if (!server && o->insecure && o->ca) {
        diag_error("%s: --tls-insecure and --tls-ca exclude each other", cmd);
        n++;
    }
    if (!o->cert != !o->key) {
        diag_error("%s: --tls-cert and --tls-key go together", cmd);
        n++;
    }
    if (server && o->self_signed && o->cert) {
        diag_error("%s: --tls-self-signed and --tls-cert exclude each other", cmd);
        n++;
    }
    if (server && !o->self_signed && !o->cert) {
        diag_error("%s: %s: a server needs --tls-cert FILE --tls-key FILE "
                   "(or --tls-self-signed)",
                   cmd, what);
        n++;
    }
    return n;
}
