/* SPDX-License-Identifier: MIT */
/*
 * HTTP CONNECT as the client speaks it: the request, with Basic
 * authentication, and the parsing of the proxy's response header.
 */
#include "proxy_wire.h"

#include <stdio.h>
#include <string.h>

#include "iocp/error.h"

size_t iocp__base64(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[n++] = digits[(v >> 18) & 63];
        out[n++] = digits[(v >> 12) & 63];
        out[n++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? digits[v & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

/* A host that can go into the request line as it is: no space, no control
 * character, nothing that would end the line or start another header. */
static bool host_is_safe(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == '@' || ch == '"')
            return false;
    }
    return true;
}

int iocp__http_connect(char *out, size_t cap, const struct iocp__proxy_target *t,
                       const char *user, const char *pass)
{
    if (!t->name || strlen(t->name) > IOCP_PROXY_NAME_MAX || !host_is_safe(t->name))
        return IOCP_EINVAL;
    /* An IPv6 address goes in brackets, as in a URL's authority. */
    bool v6 = strchr(t->name, ':') != NULL;
    char authority[IOCP_PROXY_NAME_MAX + 16];
    snprintf(authority, sizeof authority, "%s%s%s:%u", v6 ? "[" : "", t->name, v6 ? "]" : "",
             (unsigned)t->port);

    char auth_line[64 + 4 * ((2 * IOCP_PROXY_CRED_MAX + 1 + 2) / 3)];
    auth_line[0] = '\0';
    if (user) {
        size_t ulen = strlen(user), plen = pass ? strlen(pass) : 0;
        if (ulen > IOCP_PROXY_CRED_MAX || plen > IOCP_PROXY_CRED_MAX || memchr(user, ':', ulen))
            return IOCP_EINVAL;
        uint8_t plain[2 * IOCP_PROXY_CRED_MAX + 1];
        memcpy(plain, user, ulen);
        plain[ulen] = ':';
        if (plen)
            memcpy(plain + ulen + 1, pass, plen);
        char encoded[4 * ((2 * IOCP_PROXY_CRED_MAX + 1 + 2) / 3) + 1];
        iocp__base64(plain, ulen + 1 + plen, encoded);
        memset(plain, 0, sizeof plain);
        snprintf(auth_line, sizeof auth_line, "Proxy-Authorization: Basic %s\r\n", encoded);
        memset(encoded, 0, sizeof encoded);
    }
    int n = snprintf(out, cap, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", authority, authority,
                     auth_line);
    memset(auth_line, 0, sizeof auth_line);
    if (n < 0 || (size_t)n >= cap)
        return IOCP_EINVAL;
    return n;
}

/* Where the header ends (just past its empty line), or 0. */
static size_t header_end(const uint8_t *in, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (in[i] != '\n')
            continue;
        if (in[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int status_error(unsigned status, const uint8_t *reason, size_t rlen, char *why,
                        size_t why_len)
{
    /* The reason phrase as the proxy gave it, printable bytes only. */
    char text[80];
    size_t n = 0;
    for (size_t i = 0; i < rlen && n + 1 < sizeof text; i++)
        text[n++] = reason[i] >= ' ' && reason[i] < 0x7f ? (char)reason[i] : '?';
    text[n] = '\0';
    if (why && why_len)
        snprintf(why, why_len, "HTTP %u%s%s", status, n ? " " : "", text);
    switch (status) {
    case 407:
    case 401:
        return IOCP_EAUTH;
    case 403:
        return IOCP_EACCES;
    case 504:
    case 408:
        return IOCP_ETIMEDOUT;
    default:
        return IOCP_ECONNREFUSED;
    }
}

int iocp__http_parse_reply(const uint8_t *in, size_t len, char *why, size_t why_len)
{
    static const char proto[] = "HTTP/";
    size_t plen = len < 5 ? len : 5;
    if (memcmp(in, proto, plen) != 0) {
        if (why && why_len)
            snprintf(why, why_len, "HTTP: the proxy's answer is not HTTP");
        return IOCP_EPROTO;
    }
    /* The status line: HTTP/x.y SSS reason */
    const uint8_t *eol = memchr(in, '\n', len);
    if (eol) {
        size_t line = (size_t)(eol - in);
        if (line && in[line - 1] == '\r')
            line--;
        size_t i = 5;
        while (i < line && in[i] != ' ')
            i++;
        while (i < line && in[i] == ' ')
            i++;
        unsigned status = 0, digits = 0;
        while (i < line && in[i] >= '0' && in[i] <= '9' && digits < 3) {
            status = status * 10 + (unsigned)(in[i] - '0');
            i++;
            digits++;
        }
        if (digits != 3 || (i < line && in[i] != ' ')) {
            if (why && why_len)
                snprintf(why, why_len, "HTTP: the proxy's status line is malformed");
            return IOCP_EPROTO;
        }
        while (i < line && in[i] == ' ')
            i++;
        if (status < 200 || status > 299)
            return status_error(status, in + i, line - i, why, why_len);
        size_t end = header_end(in, len);
        if (end)
            return end > (size_t)INT32_MAX ? IOCP_EMSGSIZE : (int)end;
    }
    if (len >= IOCP_PROXY_REPLY_MAX) {
        if (why && why_len)
            snprintf(why, why_len, "HTTP: the proxy's response header is longer than %u bytes",
                     IOCP_PROXY_REPLY_MAX);
        return IOCP_EMSGSIZE;
    }
    return 0;
}
