/* SPDX-License-Identifier: MIT */
/*
 * The system's CA store on Windows: OpenSSL has no path to look in, so the
 * certificates of the ROOT store are read through CryptoAPI and added to
 * the context's X509 store one by one.
 */
#include <windows.h>

#include <wincrypt.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "diag.h"
#include "tls_ctx.h"

int tls_system_ca(SSL_CTX *ctx, const char *cmd)
{
    HCERTSTORE store = CertOpenSystemStoreW(0, L"ROOT");
    if (!store) {
        diag_error("%s: TLS: cannot open the system's ROOT certificate store (error %lu)", cmd,
                   (unsigned long)GetLastError());
        return -1;
    }
    X509_STORE *xs = SSL_CTX_get_cert_store(ctx);
    const CERT_CONTEXT *c = NULL;
    unsigned added = 0;
    while ((c = CertEnumCertificatesInStore(store, c)) != NULL) {
        const unsigned char *der = c->pbCertEncoded;
        X509 *x = d2i_X509(NULL, &der, (long)c->cbCertEncoded);
        if (!x)
            continue; /* one OpenSSL cannot read is not ours to trust */
        if (X509_STORE_add_cert(xs, x) == 1)
            added++;
        X509_free(x);
    }
    ERR_clear_error(); /* duplicates are not failures */
    CertCloseStore(store, 0);
    diag_info(2, "%s: TLS: %u CA certificates from the ROOT store", cmd, added);
    return 0;
}
