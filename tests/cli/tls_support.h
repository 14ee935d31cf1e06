/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the TLS suites (test_cli_tls*.c): the test certificates and
 * waiting for a peer program that prints nothing when it is ready.
 *
 * The certificates are made with the openssl command, once per run of a
 * suite's executable: the runner process names the directory
 * (/tmp/iocp-tls-PID, in the environment its tests inherit) and removes
 * it when it exits; the first test to need it generates it into a
 * directory of its own and renames that into place, so tests running at
 * once never see half a set.  In it: a CA (ca.pem), a server certificate
 * for localhost and 127.0.0.1 (server), an expired one (expired), one for
 * another host (other), a client certificate (client), each NAME.pem with
 * NAME.key (mode 600) and NAME.full.pem (certificate and key in one file,
 * as haproxy's crt takes them).  Tests may add files of their own.
 */
#ifndef IOCP_TLS_SUPPORT_H
#define IOCP_TLS_SUPPORT_H

#include <stdio.h>
#include <sys/stat.h>

#include "nc_support.h"

#define TLS_CERTS_ENV "IOCP_TEST_TLS_CERTS"

static char dir[64];

/* The runner sets the directory's name before any test starts; a test
 * process (forked or started anew) finds it in the environment. */
__attribute__((constructor)) static void tls_certs_name(void)
{
    if (!getenv(TLS_CERTS_ENV)) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/iocp-tls-%d", (int)getpid());
        setenv(TLS_CERTS_ENV, name, 1);
    }
}

/* Only the runner's own directory goes, once every test is done. */
__attribute__((destructor)) static void tls_certs_remove(void)
{
    char mine[64], cmd[192];
    snprintf(mine, sizeof mine, "/tmp/iocp-tls-%d", (int)getpid());
    const char *name = getenv(TLS_CERTS_ENV);
    if (!name || strcmp(name, mine) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'.*", mine, mine);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", mine);
}

/* dir/name, in one of a few rotating buffers. */
static inline const char *at(const char *name)
{
    static char bufs[8][128];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* Run a shell command in where, its output to where/gen.log. */
static inline void sh_in(const char *where, const char *what)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && (%s) >>gen.log 2>&1", where, what);
    cr_assert_eq(system(cmd), 0, "failed: %s (see %s/gen.log)", cmd, where);
}

/* Run a shell command in the certificates' directory. */
static inline void sh(const char *what)
{
    sh_in(dir, what);
}

/* A key and a certificate NAME.pem signed by the CA, with subjectAltName
 * san and validity days (negative: expired). */
static inline void issue(const char *where, const char *name, const char *cn, const char *san,
                         const char *days)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
             "-out %s.csr -subj /CN=%s && printf 'subjectAltName=%s\\n' >%s.ext && "
             "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days %s "
             "-extfile %s.ext -out %s.pem && chmod 600 %s.key && cat %s.pem %s.key >%s.full.pem",
             name, name, cn, san, name, name, days, name, name, name, name, name, name);
    sh_in(where, cmd);
}

/* The suite's .init: the certificates, made by whichever test is first. */
static inline void make_certs(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *name = getenv(TLS_CERTS_ENV);
    cr_assert(name && strlen(name) < sizeof dir - 8);
    snprintf(dir, sizeof dir, "%s", name);
    struct stat st;
    if (stat(dir, &st) == 0)
        return;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", name);
    cr_assert_not_null(mkdtemp(tmp));
    sh_in(tmp, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
               "-keyout ca.key -out ca.pem -days 30 -subj /CN=iocptool-test-ca && chmod 600 ca.key");
    issue(tmp, "server", "localhost", "DNS:localhost,IP:127.0.0.1", "30");
    issue(tmp, "expired", "localhost", "DNS:localhost,IP:127.0.0.1", "-1");
    issue(tmp, "other", "other.example", "DNS:other.example", "30");
    issue(tmp, "client", "iocptool-test-client", "DNS:client.example", "30");
    /* Another test may have been quicker: then its set is the one. */
    if (rename(tmp, dir) != 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            cr_log_warn("could not remove %s", tmp);
        cr_assert_eq(stat(dir, &st), 0, "no certificates in %s", dir);
    }
}

/* The suite's .fini: the processes a test started (the certificates stay
 * for the other tests). */
static inline void tls_test_done(void)
{
    proc_cleanup_all();
}

#endif /* IOCP_TLS_SUPPORT_H */
