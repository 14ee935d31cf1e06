/* SPDX-License-Identifier: MIT */
/*
 * Connecting through a proxy.  A client whose iocp_connect_config names a
 * proxy connects to the proxy, asks it for a tunnel to the target, and only
 * then calls on_open: from there on the connection is the tunnel, and its
 * bytes are the target's.  The time-out of the connect covers the whole
 * negotiation.  A proxy that refuses, fails or does not answer ends the
 * connection before on_open with an error code in on_close (IOCP_EAUTH for
 * credentials turned down, IOCP_ECONNREFUSED, IOCP_EHOSTUNREACH,
 * IOCP_ENETUNREACH, IOCP_EACCES when the target is refused,
 * IOCP_ETIMEDOUT, IOCP_EPROTO for a reply that breaks the protocol,
 * IOCP_ECONNRESET when the proxy closes during the negotiation), and
 * iocp_error_detail(), read inside that on_close, says what happened in
 * words ("SOCKS5: connection refused by the proxy's target", "HTTP 407
 * Proxy Authentication Required").
 */
#ifndef IOCP_PROXY_H
#define IOCP_PROXY_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum iocp_proxy_kind {
    IOCP_PROXY_NONE = 0,
    IOCP_PROXY_SOCKS4 = 1,  /* the target is resolved here, IPv4 only */
    IOCP_PROXY_SOCKS4A = 2, /* a target name is resolved by the proxy */
    IOCP_PROXY_SOCKS5 = 3,  /* RFC 1928: IPv4, IPv6 or a name (remote_dns) */
    IOCP_PROXY_HTTP = 4,    /* HTTP CONNECT; the proxy resolves the name */
};

/* The longest user name and password (SOCKS5, RFC 1929, allows 255 bytes
 * each; the same bound holds for SOCKS4's user ID and HTTP Basic). */
#define IOCP_PROXY_CRED_MAX 255u

struct iocp_proxy {
    int kind;         /* enum iocp_proxy_kind */
    const char *host; /* the proxy: a name or a numeric address */
    uint16_t port;
    /* Credentials, NULL for none.  SOCKS5: RFC 1929 username/password is
     * offered when username is set; SOCKS4/4a: username is the user ID
     * (no password); HTTP: Basic authentication. */
    const char *username;
    const char *password;
    /* SOCKS5 only: send the target's name to the proxy to resolve (as
     * socks5h:// does) instead of resolving it here first. */
    bool remote_dns;
};

#ifdef __cplusplus
}
#endif

#endif /* IOCP_PROXY_H */
