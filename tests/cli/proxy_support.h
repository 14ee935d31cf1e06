/* SPDX-License-Identifier: MIT */
/*
 * Real proxies for the proxy suites, started by the tests on free loopback
 * ports: Dante's sockd (SOCKS4 and SOCKS5, with or without username/
 * password) and tinyproxy (HTTP CONNECT, with or without Basic auth), each
 * with a configuration written to a fresh directory.
 *
 * Dante checks a SOCKS5 username/password against the system's users
 * (method "username": getpwnam and the shadow file), so that variant needs
 * a system user with a known password: PROXY_TEST_USER.  Running as root
 * (as CI does) the suite creates it once (useradd --system, no home, no
 * shell; chpasswd); otherwise an administrator creates it beforehand:
 *   useradd --system -M -s /usr/sbin/nologin iocp-proxy-test
 *   echo 'iocp-proxy-test:pr0xy-pass' | chpasswd
 * Without it those tests skip, and fail under IOCP_TEST_REQUIRE_ALL.
 * Dante also blocks port 9 (discard) of 127.0.0.1 by rule, so that a test
 * sees a proxy refusing a target.
 */
#ifndef IOCP_PROXY_SUPPORT_H
#define IOCP_PROXY_SUPPORT_H

#include <pwd.h>

#include "nc_support.h"

#define PROXY_TEST_USER "iocp-proxy-test"
#define PROXY_TEST_PASS "pr0xy-pass"
#define PROXY_BLOCKED_PORT 9

static inline const char *proxy_find(const char *const *paths)
{
    for (int i = 0; paths[i]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static inline const char *proxy_dante_path(void)
{
    static const char *const paths[] = {"/usr/sbin/danted", "/usr/sbin/sockd", NULL};
    return proxy_find(paths);
}

static inline const char *proxy_tinyproxy_path(void)
{
    static const char *const paths[] = {"/usr/bin/tinyproxy", "/usr/sbin/tinyproxy", NULL};
    return proxy_find(paths);
}

/* Skip (or fail under IOCP_TEST_REQUIRE_ALL) without the program. */
#define PROXY_REQUIRE(path, pkg)                                                                   \
    do {                                                                                           \
        if (!(path)) {                                                                             \
            cr_assert(!getenv("IOCP_TEST_REQUIRE_ALL"), pkg " is not installed (.ci/deps)");     \
            cr_skip_test(pkg " is not installed (.ci/deps installs it)");                         \
        }                                                                                          \
    } while (0)

/* A fresh directory for configuration files. */
static inline const char *proxy_tmpdir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/iocp-proxy-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    return dir;
}

static inline void proxy_write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
    cr_assert(tn_write_all(fd, text, strlen(text)));
    close(fd);
}

/* The system user Dante's username method checks, made when we may. */
static inline bool proxy_test_user(void)
{
    if (getpwnam(PROXY_TEST_USER))
        return true;
    if (geteuid() != 0)
        return false;
    int rc = system("useradd --system -M -s /usr/sbin/nologin " PROXY_TEST_USER
                    " >/dev/null 2>&1 && echo '" PROXY_TEST_USER ":" PROXY_TEST_PASS
                    "' | chpasswd >/dev/null 2>&1");
    return rc == 0 && getpwnam(PROXY_TEST_USER);
}

/* Start sockd on a free port: socksmethod "none" or "username"; its port. */
static inline uint16_t proxy_start_dante(struct proc *p, const char *method)
{
    const char *dante = proxy_dante_path();
    PROXY_REQUIRE(dante, "dante-server");
    if (strcmp(method, "username") == 0 && !proxy_test_user()) {
        cr_assert(!getenv("IOCP_TEST_REQUIRE_ALL"),
                  "no system user " PROXY_TEST_USER " for Dante's username method");
        cr_skip_test("no system user " PROXY_TEST_USER " (see tests/cli/proxy_support.h)");
    }
    for (int tries = 0; tries < 5; tries++) {
        uint16_t port = tn_server_port();
        char conf[256], text[1024];
        snprintf(conf, sizeof conf, "%s/sockd-%u.conf", proxy_tmpdir(), port);
        snprintf(text, sizeof text,
                 "logoutput: stderr\n"
                 "internal: 127.0.0.1 port = %u\n"
                 "external: 127.0.0.1\n"
                 "clientmethod: none\n"
                 "socksmethod: %s\n"
                 "%s"
                 "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
                 "socks block { from: 0.0.0.0/0 to: 127.0.0.1/32 port = %d }\n"
                 "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n",
                 port, method,
                 geteuid() == 0 ? "user.privileged: root\nuser.unprivileged: nobody\n" : "",
                 PROXY_BLOCKED_PORT);
        proxy_write_file(conf, text, 0644);
        char *argv[] = {(char *)dante, "-f", conf, "-N", "1", NULL};
        cr_assert(nc_spawn(p, open("/dev/null", O_RDONLY | O_CLOEXEC), argv));
        if (nc_wait_own_listener(p, port, 10000))
            return port;
        proc_signal(p, SIGKILL, 5000); /* the port was taken meanwhile: again */
    }
    cr_assert_fail("sockd did not start: %s", p->errbuf);
    return 0;
}

/* Start tinyproxy on a free port, with Basic auth when user is set. */
static inline uint16_t proxy_start_tinyproxy(struct proc *p, const char *user, const char *pass)
{
    const char *tp = proxy_tinyproxy_path();
    PROXY_REQUIRE(tp, "tinyproxy");
    for (int tries = 0; tries < 5; tries++) {
        uint16_t port = tn_server_port();
        char conf[256], text[1024], auth[300] = "";
        if (user)
            snprintf(auth, sizeof auth, "BasicAuth %s %s\n", user, pass);
        snprintf(conf, sizeof conf, "%s/tinyproxy-%u.conf", proxy_tmpdir(), port);
        snprintf(text, sizeof text,
                 "Port %u\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 50\n"
                 "LogLevel Warning\n%s",
                 port, auth);
        proxy_write_file(conf, text, 0644);
        char *argv[] = {(char *)tp, "-d", "-c", conf, NULL};
        cr_assert(nc_spawn(p, open("/dev/null", O_RDONLY | O_CLOEXEC), argv));
        if (nc_wait_own_listener(p, port, 10000))
            return port;
        proc_signal(p, SIGKILL, 5000); /* the port was taken meanwhile: again */
    }
    cr_assert_fail("tinyproxy did not start: %s", p->errbuf);
    return 0;
}

#endif /* IOCP_PROXY_SUPPORT_H */
