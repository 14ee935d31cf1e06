/* SPDX-License-Identifier: MIT */
/*
 * SOCKS5 as the relay's SOCKS server reads and answers it (socks_wire.h).
 */
#include "socks_wire.h"

#include <stdio.h>
#include <string.h>

int socks5_parse_hello(const uint8_t *in, size_t len, struct socks5_hello *out)
{
    if (len >= 1 && in[0] != 5)
        return -1;
    if (len < 2)
        return 0;
    size_t n = in[1];
    if (n == 0)
        return -1;
    if (len < 2 + n)
        return 0;
    out->none = out->userpass = false;
    for (size_t i = 0; i < n; i++) {
        if (in[2 + i] == SOCKS5_METHOD_NONE)
            out->none = true;
        else if (in[2 + i] == SOCKS5_METHOD_USERPASS)
            out->userpass = true;
    }
    return (int)(2 + n);
}

int socks5_parse_userpass(const uint8_t *in, size_t len, struct socks5_userpass *out)
{
    if (len >= 1 && in[0] != 1)
        return -1;
    if (len < 2)
        return 0;
    size_t ulen = in[1];
    if (len < 2 + ulen + 1)
        return 0;
    size_t plen = in[2 + ulen];
    if (len < 3 + ulen + plen)
        return 0;
    if (memchr(in + 2, 0, ulen) || memchr(in + 3 + ulen, 0, plen))
        return -1;
    memcpy(out->user, in + 2, ulen);
    out->user[ulen] = '\0';
    memcpy(out->pass, in + 3 + ulen, plen);
    out->pass[plen] = '\0';
    return (int)(3 + ulen + plen);
}

/* An IPv6 address in its usual text form, the longest run of zero groups
 * shortened to "::" (RFC 5952), without the platform's inet_ntop. */
static void format_ipv6(const uint8_t *a, char *out, size_t cap)
{
    unsigned g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    int best = -1, best_len = 1, run = -1;
    for (int i = 0; i <= 8; i++) {
        if (i < 8 && g[i] == 0) {
            if (run < 0)
                run = i;
        } else if (run >= 0) {
            if (i - run > best_len) {
                best = run;
                best_len = i - run;
            }
            run = -1;
        }
    }
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < 8 && n < cap; i++) {
        if (i == best) {
            n += (size_t)snprintf(out + n, cap - n, "::");
            i += best_len - 1;
            continue;
        }
        bool colon = i > 0 && !(best >= 0 && i == best + best_len);
        n += (size_t)snprintf(out + n, cap - n, "%s%x", colon ? ":" : "", g[i]);
    }
}

int socks5_parse_request(const uint8_t *in, size_t len, struct socks5_request *out)
{
    if ((len >= 1 && in[0] != 5) || (len >= 3 && in[2] != 0))
        return -1;
    if (len < 4)
        return 0;
    memset(out, 0, sizeof *out);
    out->cmd = in[1];
    size_t need;
    switch (in[3]) {
    case 1:
        need = 4 + 4 + 2;
        if (len < need)
            return 0;
        memcpy(out->addr, in + 4, 4);
        snprintf(out->host, sizeof out->host, "%u.%u.%u.%u", in[4], in[5], in[6], in[7]);
        break;
    case 4:
        need = 4 + 16 + 2;
        if (len < need)
            return 0;
        memcpy(out->addr, in + 4, 16);
        format_ipv6(in + 4, out->host, sizeof out->host);
        break;
    case 3: {
        if (len < 5)
            return 0;
        size_t nlen = in[4];
        need = 4 + 1 + nlen + 2;
        if (nlen == 0 || memchr(in + 5, 0, len < 5 + nlen ? len - 5 : nlen))
            return -1;
        if (len < need)
            return 0;
        memcpy(out->host, in + 5, nlen);
        out->host[nlen] = '\0';
        break;
    }
    default:
        /* Unknown: its length cannot be known; the caller refuses it. */
        out->atyp = 0;
        return 4;
    }
    out->atyp = in[3];
    out->port = (uint16_t)(in[need - 2] << 8 | in[need - 1]);
    return (int)need;
}

size_t socks5_reply(uint8_t *out, uint8_t code, const uint8_t *addr, size_t addr_len,
                    uint16_t port)
{
    out[0] = 5;
    out[1] = code;
    out[2] = 0;
    size_t n = 4;
    if (addr && addr_len == 16) {
        out[3] = 4;
        memcpy(out + 4, addr, 16);
        n += 16;
    } else {
        out[3] = 1;
        if (addr && addr_len == 4)
            memcpy(out + 4, addr, 4);
        else
            memset(out + 4, 0, 4);
        n += 4;
    }
    out[n++] = (uint8_t)(port >> 8);
    out[n++] = (uint8_t)(port & 0xff);
    return n;
}
