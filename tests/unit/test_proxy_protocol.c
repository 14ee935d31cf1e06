/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol parser and builders (cli/leg/proxy_protocol.c): the
 * headers haproxy's specification shows, each fed byte by byte (every
 * prefix must ask for more, never fail), the header followed by data (the
 * length says where the data starts), and the ways a header is wrong:
 * each must be refused, and as early as its first wrong byte.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_protocol.h"

TestSuite(proxy_protocol, .timeout = 30);

/* Every proper prefix asks for more; the whole gives its length. */
static struct proxy_addr parse_whole(const void *hdr, size_t len)
{
    struct proxy_addr a;
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(proxy_parse(hdr, i, &a), PROXY_MORE, "prefix of %zu bytes", i);
    cr_assert_eq(proxy_parse(hdr, len, &a), (int)len);
    return a;
}

static void expect_bad(const void *hdr, size_t len, int want)
{
    struct proxy_addr a;
    cr_expect_eq(proxy_parse(hdr, len, &a), want, "%.*s", (int)len, (const char *)hdr);
}

#define BAD(s) expect_bad(s, sizeof(s) - 1, PROXY_BAD)

Test(proxy_protocol, v1_tcp4)
{
    const char h[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    struct proxy_addr a = parse_whole(h, sizeof h - 1);
    cr_expect_eq(a.family, AF_INET);
    cr_expect_eq(a.version, 1);
    cr_expect_eq(a.src_port, 56324);
    cr_expect_eq(a.dst_port, 443);
    cr_expect_eq(memcmp(a.src, "\xc0\xa8\x00\x01", 4), 0);
    cr_expect_eq(memcmp(a.dst, "\xc0\xa8\x00\x0b", 4), 0);
    char buf[64];
    cr_expect_str_eq(proxy_format_src(&a, buf, sizeof buf), "192.168.0.1:56324");
}

Test(proxy_protocol, v1_tcp6_and_unknown)
{
    const char h[] = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    struct proxy_addr a = parse_whole(h, sizeof h - 1);
    cr_expect_eq(a.family, AF_INET6);
    char buf[64];
    cr_expect_str_eq(proxy_format_src(&a, buf, sizeof buf), "[2001:db8::1]:1");
    cr_expect_eq(a.dst_port, 65535);

    const char u[] = "PROXY UNKNOWN\r\n";
    a = parse_whole(u, sizeof u - 1);
    cr_expect_eq(a.family, 0);
    const char u2[] = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    a = parse_whole(u2, sizeof u2 - 1);
    cr_expect_eq(a.family, 0);
}

Test(proxy_protocol, v1_data_after_the_header_is_not_part_of_it)
{
    const char h[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1000 2000\r\nGET / HTTP/1.0\r\n";
    struct proxy_addr a;
    cr_expect_eq(proxy_parse(h, sizeof h - 1, &a), 38);
}

Test(proxy_protocol, v1_malformed)
{
    BAD("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    BAD("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
    BAD("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 ::1 ::1 1 2\r\n");
    BAD("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n");
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX");
    BAD("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n");
    BAD("PROXY \r\n");
    BAD("PROXY\r\n");
    BAD("GET / HTTP/1.0\r\n");
    BAD("SSH-2.0-OpenSSH\r\n");
    /* Refused at the first wrong byte, without waiting for the line. */
    BAD("PROXZ");
    BAD("X");
    BAD("PROXY TCP4 1.2.3.4\x01");
}

Test(proxy_protocol, v1_too_long)
{
    char h[200];
    memset(h, 'A', sizeof h);
    memcpy(h, "PROXY UNKNOWN ", 14);
    struct proxy_addr a;
    cr_expect_eq(proxy_parse(h, PROXY_V1_MAX - 1, &a), PROXY_MORE);
    cr_expect_eq(proxy_parse(h, PROXY_V1_MAX, &a), PROXY_TOO_LONG);
    cr_expect_eq(proxy_parse(h, sizeof h, &a), PROXY_TOO_LONG);
    /* 107 bytes, CRLF included, is the most. */
    memcpy(h + PROXY_V1_MAX - 2, "\r\n", 2);
    cr_expect_eq(proxy_parse(h, PROXY_V1_MAX, &a), PROXY_V1_MAX);
}

static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header: ver_cmd, fam, then body bytes. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body,
                 size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(blen >> 8);
    out[15] = (unsigned char)blen;
    memcpy(out + 16, body, blen);
    return 16 + blen;
}

Test(proxy_protocol, v2_tcp4_tcp6_local)
{
    unsigned char h[2048];
    const unsigned char b4[] = {10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb};
    struct proxy_addr a = parse_whole(h, v2(h, 0x21, 0x11, b4, sizeof b4));
    cr_expect_eq(a.family, AF_INET);
    cr_expect_eq(a.version, 2);
    cr_expect_eq(a.src_port, 12345);
    cr_expect_eq(a.dst_port, 443);
    char buf[64];
    cr_expect_str_eq(proxy_format_src(&a, buf, sizeof buf), "10.0.0.1:12345");

    unsigned char b6[36] = {0};
    b6[15] = 1;  /* ::1 */
    b6[31] = 2;  /* ::2 */
    b6[33] = 80; /* port 80 */
    a = parse_whole(h, v2(h, 0x21, 0x21, b6, sizeof b6));
    cr_expect_eq(a.family, AF_INET6);
    cr_expect_str_eq(proxy_format_src(&a, buf, sizeof buf), "[::1]:80");

    /* LOCAL (a health check of the balancer's own): no address. */
    a = parse_whole(h, v2(h, 0x20, 0x00, "", 0));
    cr_expect_eq(a.family, 0);
    /* LOCAL with an address block: still none. */
    a = parse_whole(h, v2(h, 0x20, 0x11, b4, sizeof b4));
    cr_expect_eq(a.family, 0);
    /* UDP and Unix addresses mean nothing to a TCP relay. */
    a = parse_whole(h, v2(h, 0x21, 0x12, b4, sizeof b4));
    cr_expect_eq(a.family, 0);
    unsigned char bu[216] = {0};
    a = parse_whole(h, v2(h, 0x21, 0x31, bu, sizeof bu));
    cr_expect_eq(a.family, 0);
}

Test(proxy_protocol, v2_tlvs_must_tile_the_rest)
{
    unsigned char h[2048], body[64];
    const unsigned char b4[] = {10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb};
    memcpy(body, b4, 12);
    /* ALPN "h2" and a NOOP of 0 bytes. */
    memcpy(body + 12, "\x01\x00\x02h2\x04\x00\x00", 8);
    struct proxy_addr a = parse_whole(h, v2(h, 0x21, 0x11, body, 20));
    cr_expect_eq(a.family, AF_INET);
    /* A TLV longer than what is left. */
    memcpy(body + 12, "\x01\x00\x05h2", 5);
    expect_bad(h, v2(h, 0x21, 0x11, body, 17), PROXY_BAD);
    /* A TLV cut in its own header. */
    memcpy(body + 12, "\x01\x00", 2);
    expect_bad(h, v2(h, 0x21, 0x11, body, 14), PROXY_BAD);
}

Test(proxy_protocol, v2_malformed_and_too_long)
{
    unsigned char h[4096];
    const unsigned char b4[] = {10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb};
    expect_bad(h, v2(h, 0x11, 0x11, b4, 12), PROXY_BAD); /* version 1 in a v2 header */
    expect_bad(h, v2(h, 0x22, 0x11, b4, 12), PROXY_BAD); /* command 2 */
    expect_bad(h, v2(h, 0x21, 0x41, b4, 12), PROXY_BAD); /* family 4 */
    expect_bad(h, v2(h, 0x21, 0x13, b4, 12), PROXY_BAD); /* protocol 3 */
    expect_bad(h, v2(h, 0x21, 0x10, b4, 12), PROXY_BAD); /* IPv4 without a protocol */
    expect_bad(h, v2(h, 0x21, 0x11, b4, 11), PROXY_BAD); /* address block cut */
    expect_bad(h, v2(h, 0x21, 0x21, b4, 12), PROXY_BAD); /* IPv6 needs 36 */
    /* Refused at the first wrong byte. */
    memcpy(h, sig, 12);
    h[5] = 'X';
    expect_bad(h, 6, PROXY_BAD);
    v2(h, 0x31, 0x11, b4, 12);
    expect_bad(h, 13, PROXY_BAD);
    /* Longer than PROXY_HEADER_MAX: refused as soon as the length is read. */
    unsigned char big[PROXY_HEADER_MAX] = {0};
    memcpy(big, b4, 12);
    size_t n = v2(h, 0x21, 0x11, big, PROXY_HEADER_MAX - 16 + 1);
    expect_bad(h, 16, PROXY_TOO_LONG);
    expect_bad(h, n, PROXY_TOO_LONG);
    /* Exactly PROXY_HEADER_MAX is accepted (one TLV fills the rest). */
    size_t tl = PROXY_HEADER_MAX - 16 - 12 - 3;
    big[12] = 0x04;
    big[13] = (unsigned char)(tl >> 8);
    big[14] = (unsigned char)tl;
    n = v2(h, 0x21, 0x11, big, PROXY_HEADER_MAX - 16);
    struct proxy_addr a;
    cr_expect_eq(proxy_parse(h, n, &a), PROXY_HEADER_MAX);
}

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &s.sin_addr);
    return s;
}

static struct sockaddr_in6 sin6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, ip, &s.sin6_addr);
    return s;
}

Test(proxy_protocol, built_headers_parse_back)
{
    struct proxy_addr a, b;
    char v1[PROXY_V1_MAX + 1];
    unsigned char v2h[64];

    struct sockaddr_in s4 = sin4("127.0.0.1", 40000), d4 = sin4("127.0.0.2", 8080);
    proxy_from_sockaddrs((struct sockaddr *)&s4, (struct sockaddr *)&d4, &a);
    cr_expect_eq(a.family, AF_INET);
    size_t n = proxy_build_v1(&a, v1, sizeof v1);
    cr_expect_eq(n, strlen("PROXY TCP4 127.0.0.1 127.0.0.2 40000 8080\r\n"));
    cr_expect_eq(memcmp(v1, "PROXY TCP4 127.0.0.1 127.0.0.2 40000 8080\r\n", n), 0);
    cr_expect_eq(proxy_parse(v1, n, &b), (int)n);
    cr_expect_eq(memcmp(a.src, b.src, 4) | memcmp(a.dst, b.dst, 4), 0);
    n = proxy_build_v2(&a, v2h, sizeof v2h);
    cr_expect_eq(n, 28);
    cr_expect_eq(proxy_parse(v2h, n, &b), 28);
    cr_expect_eq(b.src_port, 40000);
    cr_expect_eq(b.dst_port, 8080);

    /* A v4 client of a dual-stack socket arrives mapped: sent as TCP4. */
    struct sockaddr_in6 m = sin6("::ffff:10.1.2.3", 5), md = sin6("::ffff:10.1.2.4", 6);
    proxy_from_sockaddrs((struct sockaddr *)&m, (struct sockaddr *)&md, &a);
    cr_expect_eq(a.family, AF_INET);
    char buf[64];
    cr_expect_str_eq(proxy_format_src(&a, buf, sizeof buf), "10.1.2.3:5");

    struct sockaddr_in6 s6 = sin6("2001:db8::5", 7), d6 = sin6("2001:db8::6", 8);
    proxy_from_sockaddrs((struct sockaddr *)&s6, (struct sockaddr *)&d6, &a);
    n = proxy_build_v1(&a, v1, sizeof v1);
    cr_expect_eq(memcmp(v1, "PROXY TCP6 2001:db8::5 2001:db8::6 7 8\r\n", n), 0);
    n = proxy_build_v2(&a, v2h, sizeof v2h);
    cr_expect_eq(n, 52);
    cr_expect_eq(proxy_parse(v2h, n, &b), 52);
    cr_expect_eq(b.family, AF_INET6);

    /* Addresses without meaning: UNKNOWN and LOCAL. */
    proxy_from_sockaddrs(NULL, NULL, &a);
    n = proxy_build_v1(&a, v1, sizeof v1);
    cr_expect_eq(memcmp(v1, "PROXY UNKNOWN\r\n", n), 0);
    n = proxy_build_v2(&a, v2h, sizeof v2h);
    cr_expect_eq(n, 16);
    cr_expect_eq(v2h[12], 0x20);
    cr_expect_eq(proxy_parse(v2h, n, &b), 16);
    cr_expect_eq(b.family, 0);
    proxy_from_sockaddrs((struct sockaddr *)&s4, (struct sockaddr *)&d6, &a);
    cr_expect_eq(a.family, 0, "mixed families have no meaning");
}
