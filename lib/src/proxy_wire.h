/* SPDX-License-Identifier: MIT */
/*
 * The client side of the proxy protocols as pure functions: requests built
 * into a caller's buffer, replies parsed from the bytes received so far.
 * No sockets, no allocation, no global state, so that the unit tests and a
 * fuzzer drive them directly (proxy_socks.c, proxy_http.c; proxy.c runs
 * them on a connection).
 *
 * Every parser returns the number of bytes its message took (> 0) once the
 * whole message is there, 0 while more bytes are needed, or a negative
 * IOCP_E* code with a sentence in why ("SOCKS5: connection refused by the
 * proxy's target").  None reads past len.
 */
#ifndef IOCP_PROXY_WIRE_H
#define IOCP_PROXY_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "iocp/types.h"
#include "iocp/proxy.h"

/* Room for a reason sentence. */
#define IOCP_PROXY_WHY_MAX 192u
/* The most a proxy's reply may take before it is refused as too long: an
 * HTTP response header longer than this is an error, never a hang. */
#define IOCP_PROXY_REPLY_MAX 16384u
/* The longest name a SOCKS request carries (one length byte). */
#define IOCP_PROXY_NAME_MAX 255u
/* Room for any request built here: an HTTP CONNECT with a 255-byte name
 * and credentials of the maximum length, base64-encoded. */
#define IOCP_PROXY_REQUEST_MAX 1536u

/* Where to: a name (ip_len 0) or an address of 4 or 16 bytes, and a port. */
struct iocp__proxy_target {
    const char *name;
    uint8_t ip[16];
    unsigned ip_len;
    uint16_t port;
};

/* ---- SOCKS5 (RFC 1928, RFC 1929) ---- */

#define IOCP_SOCKS5_NO_AUTH 0x00
#define IOCP_SOCKS5_USERPASS 0x02
#define IOCP_SOCKS5_NO_METHOD 0xff

/* The method offer: no authentication, and username/password when
 * with_password.  Returns its length (at most 4). */
size_t iocp__socks5_hello(uint8_t *out, bool with_password);
/* The proxy's choice: 2 and *method, 0, or an error (no acceptable
 * method: IOCP_EAUTH; a method not offered or a wrong version: IOCP_EPROTO). */
int iocp__socks5_parse_choice(const uint8_t *in, size_t len, bool offered_password, int *method,
                              char *why, size_t why_len);
/* The username/password request; its length, or IOCP_EINVAL when either is
 * longer than 255 bytes or the user name is empty. */
int iocp__socks5_auth(uint8_t *out, size_t cap, const char *user, const char *pass);
/* The verdict on it: 2, 0, or IOCP_EAUTH / IOCP_EPROTO. */
int iocp__socks5_parse_auth(const uint8_t *in, size_t len, char *why, size_t why_len);
/* The CONNECT request; its length, or IOCP_EINVAL (name too long or empty). */
int iocp__socks5_connect(uint8_t *out, size_t cap, const struct iocp__proxy_target *t);
/* The reply to it: its whole length (a bound address of any type
 * included), 0, or the error the reply code stands for. */
int iocp__socks5_parse_reply(const uint8_t *in, size_t len, char *why, size_t why_len);

/* ---- SOCKS4 and SOCKS4a ---- */

/* The CONNECT request: an IPv4 target, or (socks4a, name set) the name
 * for the proxy to resolve; user is the user ID ("" for none).  Its length,
 * or IOCP_EINVAL (an IPv6 target, a name without socks4a, too long). */
int iocp__socks4_connect(uint8_t *out, size_t cap, const struct iocp__proxy_target *t,
                         const char *user, bool socks4a);
/* The reply: 8, 0, or the error its code stands for. */
int iocp__socks4_parse_reply(const uint8_t *in, size_t len, char *why, size_t why_len);

/* ---- HTTP CONNECT ---- */

/* "CONNECT host:port HTTP/1.1" with Host and, when user is set, Basic
 * Proxy-Authorization.  Its length, or IOCP_EINVAL (too long, a name with
 * characters that would break the request line). */
int iocp__http_connect(char *out, size_t cap, const struct iocp__proxy_target *t,
                       const char *user, const char *pass);
/* The response header: its length up to and including the empty line when
 * the status is 2xx, 0 while it is incomplete, or an error: the status
 * (407: IOCP_EAUTH; 403: IOCP_EACCES; 504: IOCP_ETIMEDOUT; others:
 * IOCP_ECONNREFUSED, "HTTP 502 Bad Gateway"), IOCP_EPROTO for what is not
 * HTTP, IOCP_EMSGSIZE for a header of IOCP_PROXY_REPLY_MAX bytes or more. */
int iocp__http_parse_reply(const uint8_t *in, size_t len, char *why, size_t why_len);

/* Base64 (RFC 4648, padded) of len bytes into out, which has room for
 * 4 * ((len + 2) / 3) + 1; returns the length written, NUL excluded. */
size_t iocp__base64(const uint8_t *in, size_t len, char *out);

#endif /* IOCP_PROXY_WIRE_H */
