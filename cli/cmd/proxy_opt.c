/* SPDX-License-Identifier: MIT */
/*
 * The proxy options (proxy_opt.h): URLs, nc's -X/-x, and the credentials
 * file.
 */
#include "proxy_opt.h"

#include <stdio.h>
#include <string.h>

#include "diag.h"
#include "keyfile.h"

#define SOCKS_DEFAULT_PORT 1080
#define HTTP_DEFAULT_PORT 3128

bool proxy_opt_given(const struct proxy_opt *po)
{
    return po->url || po->auth_file || po->nc_kind || po->nc_addr;
}

void proxy_opt_wipe(struct proxy_opt *po)
{
    keyfile_wipe(po->user, sizeof po->user);
    keyfile_wipe(po->pass, sizeof po->pass);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Copy len bytes of a URL's user or password, %-decoded, into out. */
static bool decode(const char *cmd, const char *what, const char *s, size_t len, char *out,
                   size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int a = i + 2 < len ? hexval(s[i + 1]) : -1;
            int b = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0) {
                diag_error("%s: --proxy: the %s has a '%%' without two hex digits", cmd, what);
                return false;
            }
            ch = a * 16 + b;
            i += 2;
        }
        if (ch == 0 || n + 1 >= cap) {
            diag_error("%s: --proxy: the %s %s", cmd, what,
                       ch == 0 ? "holds a NUL byte" : "is longer than 255 bytes");
            return false;
        }
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return true;
}

static const struct {
    const char *scheme;
    int kind;
    bool remote_dns;
} schemes[] = {
    {"socks4", IOCP_PROXY_SOCKS4, false},  {"socks4a", IOCP_PROXY_SOCKS4A, true},
    {"socks5", IOCP_PROXY_SOCKS5, false},  {"socks5h", IOCP_PROXY_SOCKS5, true},
    {"http", IOCP_PROXY_HTTP, true},
};

/* HOST[:PORT] or [IPV6][:PORT] of a proxy, with its default port. */
static bool parse_hostport(const char *cmd, const char *opt, const char *text,
                           struct proxy_opt *po, uint16_t default_port)
{
    const char *colon = NULL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close && close[1] == ':')
            colon = close + 1;
        else if (!close || close[1] != '\0') {
            diag_error("%s: %s %s: expected [IPV6] or [IPV6]:PORT", cmd, opt, text);
            return false;
        }
    } else {
        colon = strrchr(text, ':');
        if (colon && strchr(text, ':') != colon) {
            diag_error("%s: %s %s: an IPv6 address goes in brackets: [::1]:1080", cmd, opt,
                       text);
            return false;
        }
    }
    if (!colon) {
        size_t len = strlen(text);
        if (text[0] == '[')
            text++, len -= 2;
        if (len == 0 || len >= sizeof po->host) {
            diag_error("%s: %s: the proxy's host is %s", cmd, opt, len ? "too long" : "missing");
            return false;
        }
        memcpy(po->host, text, len);
        po->host[len] = '\0';
        po->proxy.port = default_port;
    } else if (!addr_target(cmd, text, po->host, sizeof po->host, &po->proxy.port)) {
        return false;
    }
    po->proxy.host = po->host;
    return true;
}

bool proxy_opt_parse_url(const char *cmd, const char *url, struct proxy_opt *po)
{
    const char *sep = strstr(url, "://");
    if (!sep) {
        diag_error("%s: --proxy %s: expected SCHEME://[USER[:PASS]@]HOST[:PORT] (socks4, "
                   "socks4a, socks5, socks5h or http)",
                   cmd, url);
        return false;
    }
    size_t slen = (size_t)(sep - url);
    int found = -1;
    for (unsigned i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strlen(schemes[i].scheme) == slen && strncmp(url, schemes[i].scheme, slen) == 0)
            found = (int)i;
    }
    if (found < 0) {
        diag_error("%s: --proxy %s: unknown scheme '%.*s' (socks4, socks4a, socks5, socks5h or "
                   "http)",
                   cmd, url, (int)slen, url);
        return false;
    }
    po->proxy.kind = schemes[found].kind;
    po->proxy.remote_dns = schemes[found].remote_dns;
    const char *rest = sep + 3;
    size_t rlen = strlen(rest);
    if (rlen && rest[rlen - 1] == '/')
        rlen--; /* http://proxy:3128/ as browsers write it */
    char authority[ADDR_HOST_MAX + 2 * IOCP_PROXY_CRED_MAX * 3 + 16];
    if (rlen >= sizeof authority || memchr(rest, '/', rlen)) {
        diag_error("%s: --proxy %s: %s", cmd, url,
                   rlen >= sizeof authority ? "too long" : "a proxy URL has no path");
        return false;
    }
    memcpy(authority, rest, rlen);
    authority[rlen] = '\0';
    char *at = strrchr(authority, '@');
    const char *hostport = authority;
    po->user[0] = po->pass[0] = '\0';
    po->proxy.username = po->proxy.password = NULL;
    if (at) {
        *at = '\0';
        hostport = at + 1;
        char *colon = strchr(authority, ':');
        size_t ulen = colon ? (size_t)(colon - authority) : strlen(authority);
        if (!decode(cmd, "user name", authority, ulen, po->user, sizeof po->user))
            return false;
        po->proxy.username = po->user;
        if (colon) {
            if (!decode(cmd, "password", colon + 1, strlen(colon + 1), po->pass, sizeof po->pass))
                return false;
            po->proxy.password = po->pass;
        }
        keyfile_wipe(authority, (size_t)(at - authority));
    }
    uint16_t def = po->proxy.kind == IOCP_PROXY_HTTP ? HTTP_DEFAULT_PORT : SOCKS_DEFAULT_PORT;
    return parse_hostport(cmd, "--proxy", hostport, po, def);
}

/* USER:PASS from the first line of a private file. */
static bool load_auth(const char *cmd, struct proxy_opt *po)
{
    char buf[2 * IOCP_PROXY_CRED_MAX + 8];
    size_t len = 0;
    if (keyfile_read(cmd, po->auth_file, buf, sizeof buf, &len) != 0)
        return false;
    buf[len] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl)
        *nl = '\0';
    else if (len == sizeof buf - 1) {
        diag_error("%s: --proxy-auth %s: longer than USER:PASS of 255 bytes each", cmd,
                   po->auth_file);
        keyfile_wipe(buf, sizeof buf);
        return false;
    }
    char *colon = strchr(buf, ':');
    size_t ulen = colon ? (size_t)(colon - buf) : strlen(buf);
    size_t plen = colon ? strlen(colon + 1) : 0;
    bool ok = ulen > 0 && ulen <= IOCP_PROXY_CRED_MAX && plen <= IOCP_PROXY_CRED_MAX;
    if (ok) {
        memcpy(po->user, buf, ulen);
        po->user[ulen] = '\0';
        po->proxy.username = po->user;
        po->proxy.password = NULL;
        if (colon) {
            memcpy(po->pass, colon + 1, plen);
            po->pass[plen] = '\0';
            po->proxy.password = po->pass;
        }
    } else {
        diag_error("%s: --proxy-auth %s: expected one line USER:PASS (each at most 255 bytes)",
                   cmd, po->auth_file);
    }
    keyfile_wipe(buf, sizeof buf);
    return ok;
}

bool proxy_opt_finish(const char *cmd, struct proxy_opt *po)
{
    po->proxy.kind = IOCP_PROXY_NONE;
    if (po->url && (po->nc_kind || po->nc_addr)) {
        diag_error("%s: --proxy and -X/-x exclude each other", cmd);
        return false;
    }
    if (po->url) {
        if (!proxy_opt_parse_url(cmd, po->url, po))
            return false;
    } else if (po->nc_kind || po->nc_addr) {
        if (!po->nc_addr) {
            diag_error("%s: -X %s: the proxy's address (-x HOST:PORT) is missing", cmd,
                       po->nc_kind);
            return false;
        }
        const char *k = po->nc_kind ? po->nc_kind : "5";
        if (strcmp(k, "5") == 0) {
            po->proxy.kind = IOCP_PROXY_SOCKS5;
            po->proxy.remote_dns = true;
        } else if (strcmp(k, "4") == 0) {
            po->proxy.kind = IOCP_PROXY_SOCKS4;
        } else if (strcmp(k, "connect") == 0) {
            po->proxy.kind = IOCP_PROXY_HTTP;
        } else {
            diag_error("%s: -X %s: expected 4, 5 or connect", cmd, k);
            return false;
        }
        uint16_t def = po->proxy.kind == IOCP_PROXY_HTTP ? HTTP_DEFAULT_PORT : SOCKS_DEFAULT_PORT;
        if (!parse_hostport(cmd, "-x", po->nc_addr, po, def))
            return false;
    } else if (po->auth_file) {
        diag_error("%s: --proxy-auth: no proxy given (--proxy URL or -x HOST:PORT)", cmd);
        return false;
    } else {
        return true;
    }
    if (po->auth_file && !load_auth(cmd, po))
        return false;
    bool socks4 = po->proxy.kind == IOCP_PROXY_SOCKS4 || po->proxy.kind == IOCP_PROXY_SOCKS4A;
    if (socks4 && po->proxy.password) {
        diag_error("%s: SOCKS4 takes a user ID but no password", cmd);
        return false;
    }
    if (po->proxy.kind == IOCP_PROXY_HTTP && po->proxy.username &&
        strchr(po->proxy.username, ':')) {
        diag_error("%s: an HTTP proxy's user name cannot hold ':'", cmd);
        return false;
    }
    return true;
}
