/* SPDX-License-Identifier: MIT */
/*
 * addr.h: the address and port forms of every subcommand, and what to say
 * about a wrong one.  Each message names what was wrong and how to write it
 * right, so that a user can act on it without the manual.
 */
#include "addr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "netcompat.h"

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/*
 * A port, or why not (into why): a number, possibly negative so that "-1"
 * is "too small" rather than "not a number", or a TCP service name.  The
 * services database is read on the main thread before anything starts.
 */
static bool parse_port(const char *text, bool allow_zero, uint16_t *out, char *why, size_t len)
{
    const char *bounds = allow_zero ? "1-65535, or 0 for any" : "1-65535";
    if (!*text) {
        snprintf(why, len, "the port is missing (%s, or a service name such as http)", bounds);
        return false;
    }
    if (all_digits(text + (text[0] == '-'))) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (v < (allow_zero ? 0 : 1) || (errno == ERANGE && v < 0)) {
            snprintf(why, len, "port %s: too small (%s)", text, bounds);
            return false;
        }
        if (v > 65535 || errno == ERANGE) {
            snprintf(why, len, "port %s: too large (%s)", text, bounds);
            return false;
        }
        *out = (uint16_t)v;
        return true;
    }
    const struct servent *se = getservbyname(text, "tcp");
    if (!se) {
        snprintf(why, len, "port %s: not a number or a known service name (such as http)", text);
        return false;
    }
    *out = ntohs((uint16_t)se->s_port);
    return true;
}

bool addr_port(const char *cmd, const char *text, bool allow_zero, uint16_t *out)
{
    char why[200];
    if (parse_port(text, allow_zero, out, why, sizeof why))
        return true;
    diag_error("%s: %s", cmd, why);
    return false;
}

bool addr_port_range(const char *cmd, const char *text, uint16_t *lo, uint16_t *hi)
{
    char why[200];
    /* A service whose name has a dash in it (ms-sql-s) is one port; a dash
     * in front is a minus sign.  Otherwise the first dash splits the range. */
    const char *dash = strchr(text + (text[0] == '-'), '-');
    if (!dash || (!all_digits(text) && getservbyname(text, "tcp"))) {
        if (!parse_port(text, false, lo, why, sizeof why)) {
            diag_error("%s: %s", cmd, why);
            return false;
        }
        *hi = *lo;
        return true;
    }
    char from[64];
    size_t n = (size_t)(dash - text);
    if (n >= sizeof from) {
        diag_error("%s: port range %s: expected FROM-TO, such as 20-25", cmd, text);
        return false;
    }
    memcpy(from, text, n);
    from[n] = '\0';
    if (!n || !dash[1]) {
        diag_error("%s: port range %s: expected FROM-TO, such as 20-25", cmd, text);
        return false;
    }
    if (!parse_port(from, false, lo, why, sizeof why) ||
        !parse_port(dash + 1, false, hi, why, sizeof why)) {
        diag_error("%s: port range %s: %s", cmd, text, why);
        return false;
    }
    if (*hi < *lo) {
        diag_error("%s: port range %s: goes backwards", cmd, text);
        return false;
    }
    return true;
}

/*
 * More than one colon and no brackets: an IPv6 address, written so that
 * its port cannot be told from it.  Say how to write it: "::1:8080" is
 * [::1]:8080, "::1" is [::1]:PORT.
 */
static void say_brackets(const char *cmd, const char *what, const char *text)
{
    const char *colon = strrchr(text, ':');
    char left[ADDR_HOST_MAX];
    unsigned char bin[16];
    size_t n = (size_t)(colon - text);
    bool split = n < sizeof left && colon[1];
    if (split) {
        memcpy(left, text, n);
        left[n] = '\0';
        split = inet_pton(AF_INET6, left, bin) == 1;
    }
    if (split)
        diag_error("%s: %s%s: an IPv6 address goes in brackets, with the port after them: "
                   "[%s]:%s",
                   cmd, what, text, left, colon + 1);
    else
        diag_error("%s: %s%s: an IPv6 address goes in brackets, with the port after them: "
                   "[%s]:PORT",
                   cmd, what, text, text);
}

/*
 * Split HOST:PORT or [HOST]:PORT.  0: split (host and port_text set); 1: no
 * colon at all (the caller decides what a lone word is); -1: a mistake,
 * said.  what prefixes the messages ("target ").
 */
static int split_hostport(const char *cmd, const char *what, const char *text, char *host,
                          size_t hostlen, const char **port_text)
{
    host[0] = '\0';
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        size_t n = close ? (size_t)(close - text - 1) : 0;
        if (!close || n == 0 || close[1] != ':') {
            diag_error("%s: %s%s: expected [IPV6]:PORT, such as [::1]:8080", cmd, what, text);
            return -1;
        }
        if (n >= hostlen) {
            diag_error("%s: %s%s: the address is too long", cmd, what, text);
            return -1;
        }
        memcpy(host, text + 1, n);
        host[n] = '\0';
        *port_text = close + 2;
        return 0;
    }
    const char *colon = strchr(text, ':');
    if (!colon)
        return 1;
    if (strchr(colon + 1, ':')) {
        say_brackets(cmd, what, text);
        return -1;
    }
    size_t n = (size_t)(colon - text);
    if (n >= hostlen) {
        diag_error("%s: %s%s: the address is too long", cmd, what, text);
        return -1;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    *port_text = colon + 1;
    return 0;
}

/* "host:" or "[::1]:": the port after the colon is missing.  The text is
 * quoted, or its colon would run into the one that ends it. */
static bool say_no_port(const char *cmd, const char *what, const char *text, const char *port_text)
{
    if (*port_text)
        return false;
    diag_error("%s: %s'%s': the port is missing after the colon, such as %s80", cmd, what, text,
               text);
    return true;
}

bool addr_is_unix(const char *text)
{
    return strncmp(text, "unix:", 5) == 0;
}

/* What fits in sockaddr_un.sun_path with its NUL (108 on Linux and
 * Windows; 104 on the BSDs, which the system would refuse at bind). */
#define UNIX_PATH_MAX 107

bool addr_unix(const char *cmd, const char *text, char *host, size_t hostlen)
{
    const char *path = text + 5;
    if (!*path || (path[0] == '@' && !path[1])) {
        diag_error("%s: %s: the %s is missing, such as unix:/run/app.sock%s", cmd, text,
                   *path ? "name" : "path", *path ? " or unix:@app" : "");
        return false;
    }
#ifndef __linux__
    if (path[0] == '@') {
        diag_error("%s: %s: abstract names (unix:@NAME) exist on Linux only; give a path", cmd,
                   text);
        return false;
    }
#endif
    if (strlen(path) > UNIX_PATH_MAX || strlen(text) >= hostlen) {
        diag_error("%s: %s: too long for a Unix-domain socket (at most %d bytes after unix:)", cmd,
                   text, UNIX_PATH_MAX);
        return false;
    }
    snprintf(host, hostlen, "%s", text);
    return true;
}

bool addr_unix_path(const char *cmd, const char *path, char *host, size_t hostlen)
{
    char text[ADDR_HOST_MAX + 8];
    if (addr_is_unix(path))
        return addr_unix(cmd, path, host, hostlen);
    snprintf(text, sizeof text, "unix:%s", path);
    return addr_unix(cmd, text, host, hostlen);
}

bool addr_unix_mode(const char *cmd, const char *text, unsigned *mode)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 8);
    if (!*text || *text == '-' || *end || errno || v == 0 || v > 07777) {
        diag_error("%s: --unix-mode %s: expected octal permission bits, such as 0660", cmd, text);
        return false;
    }
    *mode = (unsigned)v;
    return true;
}

bool addr_listen(const char *cmd, const char *text, char *host, size_t hostlen, uint16_t *port)
{
    if (addr_is_unix(text)) {
        *port = 0;
        return addr_unix(cmd, text, host, hostlen);
    }
    const char *port_text = text;
    int r = split_hostport(cmd, "", text, host, hostlen, &port_text);
    if (r < 0 || (r == 0 && say_no_port(cmd, "", text, port_text)))
        return false;
    char why[200];
    if (parse_port(port_text, true, port, why, sizeof why))
        return true;
    if (r == 1 && !all_digits(text + (text[0] == '-')))
        /* A lone word that is no service: perhaps a host without its port. */
        diag_error("%s: %s; a server takes [ADDR:]PORT, such as %s:8080", cmd, why, text);
    else
        diag_error("%s: %s%s%s", cmd, r == 0 ? text : "", r == 0 ? ": " : "", why);
    return false;
}

bool addr_target(const char *cmd, const char *text, char *host, size_t hostlen, uint16_t *port)
{
    if (addr_is_unix(text)) {
        *port = 0;
        return addr_unix(cmd, text, host, hostlen);
    }
    const char *port_text = NULL;
    int r = split_hostport(cmd, "target ", text, host, hostlen, &port_text);
    if (r < 0)
        return false;
    if (r == 1) {
        if (all_digits(text))
            diag_error("%s: target %s: expected HOST:PORT, such as 127.0.0.1:%s", cmd, text, text);
        else
            diag_error("%s: target %s: expected HOST:PORT, such as %s:80", cmd, text, text);
        return false;
    }
    if (!host[0]) {
        diag_error("%s: target %s: expected HOST:PORT, the host is missing", cmd, text);
        return false;
    }
    if (say_no_port(cmd, "target ", text, port_text))
        return false;
    char why[200];
    if (parse_port(port_text, false, port, why, sizeof why))
        return true;
    diag_error("%s: target %s: %s", cmd, text, why);
    return false;
}

const char *addr_format(const char *host, uint16_t port, char *buf, size_t len)
{
    if (addr_is_unix(host)) {
        snprintf(buf, len, "%s", host);
        return buf;
    }
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    return buf;
}

bool addr_is_self_connected(iocp_socket_t sock)
{
    struct sockaddr_storage local, peer;
    socklen_t llen = sizeof local, plen = sizeof peer;
    memset(&local, 0, sizeof local);
    memset(&peer, 0, sizeof peer);
    if (getsockname(sock, (struct sockaddr *)&local, &llen) != 0 ||
        getpeername(sock, (struct sockaddr *)&peer, &plen) != 0)
        return false;
    if (local.ss_family != peer.ss_family || llen != plen)
        return false;
    if (local.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&local;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&peer;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&local;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&peer;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return false;
}

bool addr_is_numeric(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}
