/* SPDX-License-Identifier: MIT */
/*
 * The server side of SOCKS5 (RFC 1928, RFC 1929) as pure functions: the
 * client's messages parsed from the bytes received so far, the replies
 * built into a caller's buffer.  No sockets, no allocation, so that the
 * relay's SOCKS server (socks_server.c), the unit tests and a fuzzer share
 * them.  Every parser returns how many bytes its message took (> 0), 0
 * while more are needed, or -1 for what is not SOCKS5 (the caller closes).
 * None reads past len.
 */
#ifndef IOCPTOOL_SOCKS_WIRE_H
#define IOCPTOOL_SOCKS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Methods, and the reply codes the relay sends. */
#define SOCKS5_METHOD_NONE 0x00
#define SOCKS5_METHOD_USERPASS 0x02
#define SOCKS5_METHOD_REFUSED 0xff

enum socks5_reply_code {
    SOCKS5_OK = 0,
    SOCKS5_FAILURE = 1,
    SOCKS5_NOT_ALLOWED = 2,
    SOCKS5_NET_UNREACHABLE = 3,
    SOCKS5_HOST_UNREACHABLE = 4,
    SOCKS5_REFUSED = 5,
    SOCKS5_TTL_EXPIRED = 6,
    SOCKS5_CMD_UNSUPPORTED = 7,
    SOCKS5_ATYP_UNSUPPORTED = 8,
};

/* The greeting: which of the two methods the relay knows are offered. */
struct socks5_hello {
    bool none, userpass;
};
int socks5_parse_hello(const uint8_t *in, size_t len, struct socks5_hello *out);

/* RFC 1929's request: user and pass, NUL-terminated, up to 255 bytes each. */
struct socks5_userpass {
    char user[256], pass[256];
};
int socks5_parse_userpass(const uint8_t *in, size_t len, struct socks5_userpass *out);

/*
 * The request.  cmd is the command (only 1, CONNECT, is served); host is
 * the destination as text: a name as sent (1 to 255 bytes; refused if it
 * holds a NUL), or the address in numeric form ("192.0.2.1", "2001:db8::1");
 * atyp says which (1 IPv4, 3 name, 4 IPv6).  An unknown address type
 * parses to atyp 0 (the caller replies "address type not supported"); its
 * length is unknown, so nothing after it can be read.
 */
struct socks5_request {
    uint8_t cmd, atyp;
    uint8_t addr[16];
    char host[256];
    uint16_t port;
};
int socks5_parse_request(const uint8_t *in, size_t len, struct socks5_request *out);

/* A reply: code and the bound address (4 or 16 bytes, or NULL for
 * 0.0.0.0:0).  Its length (at most 22) in out. */
size_t socks5_reply(uint8_t *out, uint8_t code, const uint8_t *addr, size_t addr_len,
                    uint16_t port);

#endif /* IOCPTOOL_SOCKS_WIRE_H */
