/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol (haproxy's proxy-protocol.txt), versions 1 and 2: the
 * header a load balancer puts before a connection's bytes to say whom the
 * connection really comes from, and that we put before ours towards a
 * target.
 *
 * Pure functions, no I/O, no allocation: proxy_parse() looks at the bytes
 * received so far and says "a complete header of N bytes", "not complete
 * yet, and nothing wrong so far", or "this is not a valid header".  It is
 * strict: v1 is exactly "PROXY TCP4|TCP6|UNKNOWN ..." with single spaces,
 * numeric addresses of the family it names, ports 0-65535 without leading
 * zeros and CRLF within 107 bytes; v2 has its 12-byte signature, version 2,
 * command LOCAL or PROXY, a known family and protocol, an address block
 * that fits the length it gives and TLVs that tile the rest exactly.  A
 * header longer than PROXY_HEADER_MAX is refused as too long.
 *
 * What the header says is a struct proxy_addr.  Family 0 means the
 * address has no meaning (v1 UNKNOWN, v2 LOCAL, v2 UNSPEC/UNIX/UDP): the
 * connection's own addresses stand.
 */
#ifndef IOCPTOOL_PROXY_PROTOCOL_H
#define IOCPTOOL_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* The longest v1 header, CRLF included (the specification's bound). */
#define PROXY_V1_MAX     107
/* The longest header accepted: v2's 16 bytes, the IPv6 block (36) and up
 * to 972 bytes of TLVs.  Longer is refused: a load balancer in front
 * does not need more, and the buffer of a connection stays small. */
#define PROXY_HEADER_MAX 1024

/* proxy_parse() results besides a length. */
#define PROXY_MORE     0  /* a valid beginning: wait for more bytes */
#define PROXY_BAD      -1 /* not a valid header */
#define PROXY_TOO_LONG -2 /* longer than PROXY_HEADER_MAX (or v1's 107) */

struct proxy_addr {
    int family; /* AF_INET, AF_INET6, or 0: no meaning, the connection's own */
    unsigned char src[16], dst[16]; /* 4 bytes used for AF_INET */
    uint16_t src_port, dst_port;
    uint8_t version; /* 1 or 2: which header it came in */
};

/*
 * proxy_parse(buf, len, out):
 * The header at the start of buf (len bytes received so far).  Returns its
 * length (> 0) and fills *out when it is complete; PROXY_MORE when buf is
 * a valid beginning of a header that has not ended yet; PROXY_BAD or
 * PROXY_TOO_LONG when it can no longer become one.
 */
int proxy_parse(const void *buf, size_t len, struct proxy_addr *out);

/* Why proxy_parse refused: "malformed" or "too long". */
const char *proxy_strerror(int rc);

/*
 * proxy_from_sockaddrs(src, dst, out):
 * The addresses of a connection (its peer src, its local end dst) as a
 * proxy_addr: IPv4-mapped IPv6 addresses become IPv4; two addresses of
 * different families, or of another family than IPv4 or IPv6, give
 * family 0 (UNKNOWN / LOCAL).  Either may be NULL (family 0).
 */
void proxy_from_sockaddrs(const struct sockaddr *src, const struct sockaddr *dst,
                          struct proxy_addr *out);

/*
 * proxy_build_v1(a, buf, len), proxy_build_v2(a, buf, len):
 * The header that says a: "PROXY TCP4 ...\r\n" or "PROXY UNKNOWN\r\n";
 * v2 with command PROXY and TCP over IPv4 or IPv6, or command LOCAL for
 * family 0.  Returns its length, or 0 when len is too small
 * (PROXY_V1_MAX and 52 bytes are always enough).
 */
size_t proxy_build_v1(const struct proxy_addr *a, char *buf, size_t len);
size_t proxy_build_v2(const struct proxy_addr *a, unsigned char *buf, size_t len);

/*
 * proxy_format_src(a, buf, len):
 * The source as "1.2.3.4:5678" or "[::1]:5678" (what -v, stats and logs
 * show), or "" for family 0.  Returns buf.
 */
const char *proxy_format_src(const struct proxy_addr *a, char *buf, size_t len);

/*
 * proxy_src_sockaddr(a, ss, sslen):
 * The source as a sockaddr (for access lists).  Returns its length, or 0
 * for family 0 or a too small ss.
 */
size_t proxy_src_sockaddr(const struct proxy_addr *a, void *ss, size_t sslen);

#endif /* IOCPTOOL_PROXY_PROTOCOL_H */
