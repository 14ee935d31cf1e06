/* SPDX-License-Identifier: MIT */
/*
 * proxy_protocol.h: parsing and building PROXY protocol headers.
 *
 * The parser never reads past len and decides as early as it can: a byte
 * that no valid header could have at its place is PROXY_BAD at once, so a
 * client that is not a load balancer is turned away on its first bytes,
 * not after a time-out.
 */
#include "proxy_protocol.h"

#include <stdio.h>
#include <string.h>

#include "netcompat.h"

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

#define V2_HEAD 16 /* signature, version/command, family/protocol, length */

const char *proxy_strerror(int rc)
{
    return rc == PROXY_TOO_LONG ? "PROXY header too long" : "malformed PROXY header";
}

/* ---- version 1 ---- */

/* A decimal number in [s, e) with no leading zero (but "0"), at most max. */
static bool v1_number(const char *s, const char *e, unsigned max, unsigned *out)
{
    size_t n = (size_t)(e - s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10u + (unsigned)(*s - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* A dotted quad: four decimal octets without leading zeros. */
static bool v1_ipv4(const char *s, const char *e, unsigned char out[4])
{
    for (int i = 0; i < 4; i++) {
        const char *dot = s;
        while (dot < e && *dot != '.')
            dot++;
        if ((i < 3) != (dot < e))
            return false;
        unsigned v;
        if (dot - s > 3 || !v1_number(s, dot, 255, &v))
            return false;
        out[i] = (unsigned char)v;
        s = dot + 1;
    }
    return true;
}

static bool v1_ipv6(const char *s, const char *e, unsigned char out[16])
{
    char text[46];
    size_t n = (size_t)(e - s);
    if (n < 2 || n >= sizeof text)
        return false;
    for (const char *p = s; p < e; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
              *p == ':' || *p == '.'))
            return false;
    memcpy(text, s, n);
    text[n] = '\0';
    return inet_pton(AF_INET6, text, out) == 1;
}

/* The next field up to a single space (or the end of the line), or NULL. */
static const char *v1_field(const char *s, const char *e, const char **end)
{
    const char *p = s;
    while (p < e && *p != ' ')
        p++;
    if (p == s)
        return NULL;
    *end = p;
    return s;
}

/* A whole line "PROXY ...\r\n" of n bytes (CRLF included). */
static int v1_line(const char *line, size_t n, struct proxy_addr *out)
{
    const char *s = line + sizeof v1_sig - 1, *e = line + n - 2, *fe;
    memset(out, 0, sizeof *out);
    out->version = 1;
    if (!v1_field(s, e, &fe))
        return PROXY_BAD;
    size_t plen = (size_t)(fe - s);
    if (plen == 7 && !memcmp(s, "UNKNOWN", 7))
        return (int)n; /* what follows has no meaning and is ignored */
    int family;
    if (plen == 4 && !memcmp(s, "TCP4", 4))
        family = AF_INET;
    else if (plen == 4 && !memcmp(s, "TCP6", 4))
        family = AF_INET6;
    else
        return PROXY_BAD;
    const char *f[4], *fend[4];
    s = fe;
    for (int i = 0; i < 4; i++) {
        if (s >= e || *s != ' ')
            return PROXY_BAD;
        s++;
        if (!(f[i] = v1_field(s, e, &fend[i])))
            return PROXY_BAD;
        s = fend[i];
    }
    if (s != e)
        return PROXY_BAD;
    bool ok = family == AF_INET ? v1_ipv4(f[0], fend[0], out->src) && v1_ipv4(f[1], fend[1], out->dst)
                                : v1_ipv6(f[0], fend[0], out->src) && v1_ipv6(f[1], fend[1], out->dst);
    unsigned sp, dp;
    if (!ok || !v1_number(f[2], fend[2], 65535, &sp) || !v1_number(f[3], fend[3], 65535, &dp))
        return PROXY_BAD;
    out->family = family;
    out->src_port = (uint16_t)sp;
    out->dst_port = (uint16_t)dp;
    return (int)n;
}

static int parse_v1(const unsigned char *b, size_t len, struct proxy_addr *out)
{
    size_t sig = sizeof v1_sig - 1;
    if (memcmp(b, v1_sig, len < sig ? len : sig) != 0)
        return PROXY_BAD;
    for (size_t i = sig; i < len && i < PROXY_V1_MAX; i++) {
        if (b[i] == '\r') {
            if (i + 1 == len)
                return PROXY_MORE;
            if (b[i + 1] != '\n')
                return PROXY_BAD;
            return v1_line((const char *)b, i + 2, out);
        }
        /* Only printable ASCII on the line. */
        if (b[i] < 0x20 || b[i] > 0x7e)
            return PROXY_BAD;
    }
    return len >= PROXY_V1_MAX ? PROXY_TOO_LONG : PROXY_MORE;
}

/* ---- version 2 ---- */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static int parse_v2(const unsigned char *b, size_t len, struct proxy_addr *out)
{
    if (memcmp(b, v2_sig, len < sizeof v2_sig ? len : sizeof v2_sig) != 0)
        return PROXY_BAD;
    /* Check each byte as soon as it is there. */
    if (len > 12 && (b[12] >> 4 != 2 || (b[12] & 0x0f) > 1))
        return PROXY_BAD; /* version 2; command LOCAL (0) or PROXY (1) */
    if (len > 13) {
        unsigned fam = b[13] >> 4, proto = b[13] & 0x0f;
        if (fam > 3 || proto > 2 || (fam == 0) != (proto == 0))
            return PROXY_BAD;
    }
    if (len < V2_HEAD)
        return PROXY_MORE;
    size_t body = get16(b + 14);
    size_t need = 0;
    switch (b[13] >> 4) {
    case 1:
        need = 12;
        break;
    case 2:
        need = 36;
        break;
    case 3:
        need = 216;
        break;
    default:
        break;
    }
    if (body < need)
        return PROXY_BAD;
    if (V2_HEAD + body > PROXY_HEADER_MAX)
        return PROXY_TOO_LONG;
    if (len < V2_HEAD + body)
        return PROXY_MORE;
    /* The TLVs after the address block must tile the rest exactly. */
    const unsigned char *t = b + V2_HEAD + need, *end = b + V2_HEAD + body;
    while (t < end) {
        if (end - t < 3 || (size_t)(end - t - 3) < get16(t + 1))
            return PROXY_BAD;
        t += 3 + get16(t + 1);
    }
    memset(out, 0, sizeof *out);
    out->version = 2;
    bool proxy = (b[12] & 0x0f) == 1;
    unsigned fam = b[13] >> 4, proto = b[13] & 0x0f;
    /* LOCAL, and what a TCP relay cannot use (UDP, Unix, unspecified),
     * leave the connection's own addresses. */
    if (proxy && proto == 1 && (fam == 1 || fam == 2)) {
        const unsigned char *a = b + V2_HEAD;
        size_t alen = fam == 1 ? 4 : 16;
        out->family = fam == 1 ? AF_INET : AF_INET6;
        memcpy(out->src, a, alen);
        memcpy(out->dst, a + alen, alen);
        out->src_port = (uint16_t)get16(a + 2 * alen);
        out->dst_port = (uint16_t)get16(a + 2 * alen + 2);
    }
    return (int)(V2_HEAD + body);
}

int proxy_parse(const void *buf, size_t len, struct proxy_addr *out)
{
    const unsigned char *b = buf;
    if (len == 0)
        return PROXY_MORE;
    if (b[0] == 'P')
        return parse_v1(b, len, out);
    if (b[0] == v2_sig[0])
        return parse_v2(b, len, out);
    return PROXY_BAD;
}

/* ---- building ---- */

/* One address of a sockaddr, IPv4-mapped IPv6 made IPv4; 0: neither. */
static int take(const struct sockaddr *sa, unsigned char addr[16], uint16_t *port)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(addr, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        const unsigned char *a = (const unsigned char *)&in6->sin6_addr;
        *port = ntohs(in6->sin6_port);
        if (!memcmp(a, mapped, 12)) {
            memcpy(addr, a + 12, 4);
            return AF_INET;
        }
        memcpy(addr, a, 16);
        return AF_INET6;
    }
    return 0;
}

void proxy_from_sockaddrs(const struct sockaddr *src, const struct sockaddr *dst,
                          struct proxy_addr *out)
{
    memset(out, 0, sizeof *out);
    int fs = take(src, out->src, &out->src_port);
    int fd = take(dst, out->dst, &out->dst_port);
    if (fs && fs == fd) {
        out->family = fs;
        return;
    }
    memset(out, 0, sizeof *out);
}

size_t proxy_build_v1(const struct proxy_addr *a, char *buf, size_t len)
{
    int n;
    if (a->family == AF_INET || a->family == AF_INET6) {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        inet_ntop(a->family, a->src, s, sizeof s);
        inet_ntop(a->family, a->dst, d, sizeof d);
        n = snprintf(buf, len, "PROXY %s %s %s %u %u\r\n", a->family == AF_INET ? "TCP4" : "TCP6",
                     s, d, (unsigned)a->src_port, (unsigned)a->dst_port);
    } else {
        n = snprintf(buf, len, "PROXY UNKNOWN\r\n");
    }
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

size_t proxy_build_v2(const struct proxy_addr *a, unsigned char *buf, size_t len)
{
    size_t alen = a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
    size_t body = alen ? 2 * alen + 4 : 0; /* two addresses, two ports */
    if (len < V2_HEAD + body)
        return 0;
    memcpy(buf, v2_sig, sizeof v2_sig);
    buf[12] = alen ? 0x21 : 0x20;                          /* version 2, PROXY or LOCAL */
    buf[13] = alen == 4 ? 0x11 : alen == 16 ? 0x21 : 0x00; /* TCP over IPv4/IPv6, or UNSPEC */
    buf[14] = (unsigned char)(body >> 8);
    buf[15] = (unsigned char)body;
    if (alen) {
        unsigned char *p = buf + V2_HEAD;
        memcpy(p, a->src, alen);
        memcpy(p + alen, a->dst, alen);
        p += 2 * alen;
        p[0] = (unsigned char)(a->src_port >> 8);
        p[1] = (unsigned char)a->src_port;
        p[2] = (unsigned char)(a->dst_port >> 8);
        p[3] = (unsigned char)a->dst_port;
    }
    return V2_HEAD + body;
}

const char *proxy_format_src(const struct proxy_addr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (a->family != AF_INET && a->family != AF_INET6)
        return buf;
    inet_ntop(a->family, a->src, host, sizeof host);
    snprintf(buf, len, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, (unsigned)a->src_port);
    return buf;
}

size_t proxy_src_sockaddr(const struct proxy_addr *a, void *ss, size_t sslen)
{
    if (a->family == AF_INET && sslen >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memset(&in, 0, sizeof in);
        in.sin_family = AF_INET;
        memcpy(&in.sin_addr, a->src, 4);
        in.sin_port = htons(a->src_port);
        memcpy(ss, &in, sizeof in);
        return sizeof in;
    }
    if (a->family == AF_INET6 && sslen >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        memcpy(&in6.sin6_addr, a->src, 16);
        in6.sin6_port = htons(a->src_port);
        memcpy(ss, &in6, sizeof in6);
        return sizeof in6;
    }
    return 0;
}
