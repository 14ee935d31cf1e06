/* SPDX-License-Identifier: MIT */
/*
 * The proxy options of connect and relay, turned into the library's
 * struct iocp_proxy:
 *
 *   --proxy URL        socks4://, socks4a://, socks5:// (the name resolved
 *                      here), socks5h:// (resolved by the proxy) or
 *                      http:// (CONNECT), with [USER[:PASS]@]HOST[:PORT];
 *                      USER and PASS may be %-encoded.  Default ports: 1080
 *                      for SOCKS, 3128 for HTTP (OpenBSD nc's).
 *   --proxy-auth FILE  USER:PASS on the first line of FILE, which must be
 *                      private to its owner like a --key file; it replaces
 *                      credentials given in the URL.
 *   -X 4|5|connect     nc's spelling: the protocol (default 5; SOCKS5
 *   -x HOST[:PORT]     leaves names to the proxy, as nc does).
 *
 * Each function prints "iocptool: CMD: ...: why" and returns false on a
 * mistake; the caller exits with the usage status.
 */
#ifndef IOCPTOOL_PROXY_OPT_H
#define IOCPTOOL_PROXY_OPT_H

#include <stdbool.h>

#include "iocp.h"

#include "addr.h"

struct proxy_opt {
    const char *url;       /* --proxy */
    const char *auth_file; /* --proxy-auth */
    const char *nc_kind;   /* -X */
    const char *nc_addr;   /* -x */
    /* Filled in by proxy_opt_finish(). */
    struct iocp_proxy proxy;
    char host[ADDR_HOST_MAX];
    char user[IOCP_PROXY_CRED_MAX + 1];
    char pass[IOCP_PROXY_CRED_MAX + 1];
};

/* Was any proxy option given? */
bool proxy_opt_given(const struct proxy_opt *po);

/*
 * proxy_opt_finish(cmd, po):
 * Check the options together and fill in po->proxy (po->proxy.kind stays
 * IOCP_PROXY_NONE when none was given).  The caller erases po with
 * proxy_opt_wipe() when done.
 */
bool proxy_opt_finish(const char *cmd, struct proxy_opt *po);

/* Parse one URL into po (exposed for the tests). */
bool proxy_opt_parse_url(const char *cmd, const char *url, struct proxy_opt *po);

/* Erase the credentials. */
void proxy_opt_wipe(struct proxy_opt *po);

#endif /* IOCPTOOL_PROXY_OPT_H */
