/* SPDX-License-Identifier: MIT */
/*
 * SOCKS4, SOCKS4a and SOCKS5 as the client speaks them: the requests, and
 * the parsing of each reply from however many bytes have arrived.
 */
#include "proxy_wire.h"

#include <stdio.h>
#include <string.h>

#include "iocp/error.h"

static int fail(int code, char *why, size_t why_len, const char *text)
{
    if (why && why_len)
        snprintf(why, why_len, "%s", text);
    return code;
}

/* ---- SOCKS5 ---- */

size_t iocp__socks5_hello(uint8_t *out, bool with_password)
{
    out[0] = 5;
    if (!with_password) {
        out[1] = 1;
        out[2] = IOCP_SOCKS5_NO_AUTH;
        return 3;
    }
    /* Both offered: a proxy that needs no password may say so. */
    out[1] = 2;
    out[2] = IOCP_SOCKS5_NO_AUTH;
    out[3] = IOCP_SOCKS5_USERPASS;
    return 4;
}

int iocp__socks5_parse_choice(const uint8_t *in, size_t len, bool offered_password, int *method,
                              char *why, size_t why_len)
{
    if (len >= 1 && in[0] != 5)
        return fail(IOCP_EPROTO, why, why_len, "SOCKS5: the proxy does not speak SOCKS5");
    if (len < 2)
        return 0;
    if (in[1] == IOCP_SOCKS5_NO_METHOD)
        return fail(IOCP_EAUTH, why, why_len,
                    offered_password ? "SOCKS5: the proxy accepts none of the offered methods"
                                     : "SOCKS5: the proxy requires authentication");
    if (in[1] != IOCP_SOCKS5_NO_AUTH && !(offered_password && in[1] == IOCP_SOCKS5_USERPASS))
        return fail(IOCP_EPROTO, why, why_len, "SOCKS5: the proxy chose a method not offered");
    *method = in[1];
    return 2;
}

int iocp__socks5_auth(uint8_t *out, size_t cap, const char *user, const char *pass)
{
    size_t ulen = user ? strlen(user) : 0, plen = pass ? strlen(pass) : 0;
    if (ulen == 0 || ulen > 255 || plen > 255 || cap < 3 + ulen + plen)
        return IOCP_EINVAL;
    out[0] = 1;
    out[1] = (uint8_t)ulen;
    memcpy(out + 2, user, ulen);
    out[2 + ulen] = (uint8_t)plen;
    if (plen)
        memcpy(out + 3 + ulen, pass, plen);
    return (int)(3 + ulen + plen);
}

int iocp__socks5_parse_auth(const uint8_t *in, size_t len, char *why, size_t why_len)
{
    if (len >= 1 && in[0] != 1)
        return fail(IOCP_EPROTO, why, why_len,
                    "SOCKS5: the proxy's answer to the password is not RFC 1929");
    if (len < 2)
        return 0;
    if (in[1] != 0)
        return fail(IOCP_EAUTH, why, why_len,
                    "SOCKS5: the proxy refused the user name or password");
    return 2;
}

int iocp__socks5_connect(uint8_t *out, size_t cap, const struct iocp__proxy_target *t)
{
    size_t n = 4;
    if (cap < 4 + 1 + IOCP_PROXY_NAME_MAX + 2)
        return IOCP_EINVAL;
    out[0] = 5;
    out[1] = 1; /* CONNECT */
    out[2] = 0;
    if (t->ip_len == 4 || t->ip_len == 16) {
        out[3] = t->ip_len == 4 ? 1 : 4;
        memcpy(out + 4, t->ip, t->ip_len);
        n += t->ip_len;
    } else {
        size_t nlen = t->name ? strlen(t->name) : 0;
        if (nlen == 0 || nlen > IOCP_PROXY_NAME_MAX)
            return IOCP_EINVAL;
        out[3] = 3;
        out[4] = (uint8_t)nlen;
        memcpy(out + 5, t->name, nlen);
        n += 1 + nlen;
    }
    out[n++] = (uint8_t)(t->port >> 8);
    out[n++] = (uint8_t)(t->port & 0xff);
    return (int)n;
}

/* What a SOCKS5 reply code means, as an error and a sentence. */
static int socks5_reply_error(unsigned code, char *why, size_t why_len)
{
    switch (code) {
    case 1:
        return fail(IOCP_ECONNREFUSED, why, why_len, "SOCKS5: general failure of the proxy");
    case 2:
        return fail(IOCP_EACCES, why, why_len,
                    "SOCKS5: connection not allowed by the proxy's rules");
    case 3:
        return fail(IOCP_ENETUNREACH, why, why_len,
                    "SOCKS5: network unreachable from the proxy");
    case 4:
        return fail(IOCP_EHOSTUNREACH, why, why_len, "SOCKS5: host unreachable from the proxy");
    case 5:
        return fail(IOCP_ECONNREFUSED, why, why_len,
                    "SOCKS5: connection refused by the proxy's target");
    case 6:
        return fail(IOCP_ETIMEDOUT, why, why_len, "SOCKS5: TTL expired at the proxy");
    case 7:
        return fail(IOCP_ENOTSUP, why, why_len, "SOCKS5: the proxy does not support CONNECT");
    case 8:
        return fail(IOCP_EAFNOSUPPORT, why, why_len,
                    "SOCKS5: the proxy does not support this address type");
    default:
        if (why && why_len)
            snprintf(why, why_len, "SOCKS5: unknown reply code %u from the proxy", code);
        return IOCP_EPROTO;
    }
}

int iocp__socks5_parse_reply(const uint8_t *in, size_t len, char *why, size_t why_len)
{
    if (len >= 1 && in[0] != 5)
        return fail(IOCP_EPROTO, why, why_len, "SOCKS5: the proxy's reply is not SOCKS5");
    if (len < 2)
        return 0;
    if (in[1] != 0)
        return socks5_reply_error(in[1], why, why_len);
    if (len < 4)
        return 0;
    size_t need;
    switch (in[3]) {
    case 1:
        need = 4 + 4 + 2;
        break;
    case 4:
        need = 4 + 16 + 2;
        break;
    case 3:
        if (len < 5)
            return 0;
        need = 4 + 1 + (size_t)in[4] + 2;
        break;
    default:
        return fail(IOCP_EPROTO, why, why_len,
                    "SOCKS5: the proxy's reply has an unknown address type");
    }
    return len < need ? 0 : (int)need;
}

/* ---- SOCKS4 and SOCKS4a ---- */

int iocp__socks4_connect(uint8_t *out, size_t cap, const struct iocp__proxy_target *t,
                         const char *user, bool socks4a)
{
    size_t ulen = user ? strlen(user) : 0;
    size_t nlen = t->ip_len == 0 && t->name ? strlen(t->name) : 0;
    if (t->ip_len == 16 || (t->ip_len == 0 && (!socks4a || nlen == 0)) ||
        ulen > IOCP_PROXY_CRED_MAX || nlen > IOCP_PROXY_NAME_MAX || cap < 8 + ulen + 1 + nlen + 1)
        return IOCP_EINVAL;
    out[0] = 4;
    out[1] = 1; /* CONNECT */
    out[2] = (uint8_t)(t->port >> 8);
    out[3] = (uint8_t)(t->port & 0xff);
    if (t->ip_len == 4) {
        memcpy(out + 4, t->ip, 4);
    } else {
        /* SOCKS4a: the address 0.0.0.x (x not 0) says a name follows. */
        out[4] = out[5] = out[6] = 0;
        out[7] = 1;
    }
    size_t n = 8;
    if (ulen)
        memcpy(out + n, user, ulen);
    n += ulen;
    out[n++] = 0;
    if (nlen) {
        memcpy(out + n, t->name, nlen);
        n += nlen;
        out[n++] = 0;
    }
    return (int)n;
}

int iocp__socks4_parse_reply(const uint8_t *in, size_t len, char *why, size_t why_len)
{
    /* The reply's version byte is 0; a few servers echo 4. */
    if (len >= 1 && in[0] != 0 && in[0] != 4)
        return fail(IOCP_EPROTO, why, why_len, "SOCKS4: the proxy's reply is not SOCKS4");
    if (len < 2)
        return 0;
    switch (in[1]) {
    case 90:
        break;
    case 91:
        return fail(IOCP_ECONNREFUSED, why, why_len,
                    "SOCKS4: request rejected or failed (the proxy refused the target or could not reach it)");
    case 92:
        return fail(IOCP_EAUTH, why, why_len,
                    "SOCKS4: request rejected: the proxy cannot reach identd on this host");
    case 93:
        return fail(IOCP_EAUTH, why, why_len,
                    "SOCKS4: request rejected: the user ID does not match identd's");
    default:
        if (why && why_len)
            snprintf(why, why_len, "SOCKS4: unknown reply code %u from the proxy", in[1]);
        return IOCP_EPROTO;
    }
    return len < 8 ? 0 : 8;
}
