/* SPDX-License-Identifier: MIT */
/*
 * Addresses and ports as users write them, for every subcommand: one parser,
 * so that each form is accepted, and each mistake explained, the same way
 * everywhere.
 *
 *   PORT         a number (1-65535; a server may use 0, any free port) or
 *                a TCP service name from the services database (http, ssh)
 *   HOST:PORT    a name or an IPv4 address, and a port
 *   [IPV6]:PORT  an IPv6 address goes in brackets: [::1]:8080
 *   FROM-TO      a range of ports (connect -z)
 *   unix:PATH    a Unix-domain stream socket (a server creates PATH)
 *   unix:@NAME   a Linux abstract Unix-domain name (no file)
 *
 * Each function prints "iocptool: CMD: ...: why" on a mistake and returns
 * false; the caller exits with the usage status.
 */
#ifndef IOCPTOOL_ADDR_H
#define IOCPTOOL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp.h"

/* Room for any host a parser hands back, with its terminating NUL. */
#define ADDR_HOST_MAX 256

/*
 * addr_port(cmd, text, allow_zero, out):
 * A port: a number from 1 to 65535 (0 too when allow_zero: "any free
 * port"), or a service name.  "port -1: too small (1-65535, or 0 for any)".
 */
bool addr_port(const char *cmd, const char *text, bool allow_zero, uint16_t *out);

/*
 * addr_port_range(cmd, text, lo, hi):
 * PORT or FROM-TO (each end a number or a service name); a single port
 * gives lo == hi.  Port 0 is refused: nothing can be probed there.
 */
bool addr_port_range(const char *cmd, const char *text, uint16_t *lo, uint16_t *hi);

/*
 * addr_listen(cmd, text, host, hostlen, port):
 * A server's [ADDR:]PORT: PORT alone, ADDR:PORT, :PORT or [IPV6]:PORT,
 * or unix:PATH (host is then the whole text and port 0).
 * host is empty when no address is given (every address); port may be 0.
 */
bool addr_listen(const char *cmd, const char *text, char *host, size_t hostlen, uint16_t *port);

/*
 * addr_target(cmd, text, host, hostlen, port):
 * A target's HOST:PORT or [IPV6]:PORT: both parts required, port 1-65535;
 * or unix:PATH (host is then the whole text and port 0).
 */
bool addr_target(const char *cmd, const char *text, char *host, size_t hostlen, uint16_t *port);

/* True when text is a Unix-domain address ("unix:..."). */
bool addr_is_unix(const char *text);

/* True when host is a numeric IPv4 or IPv6 address (what -n requires). */
bool addr_is_numeric(const char *host);

/*
 * addr_unix(cmd, text, host, hostlen):
 * unix:PATH or unix:@NAME, checked (a path that fits a socket address;
 * @NAME on Linux only) and copied whole into host, which the library takes
 * as it is (iocp_server_config.host, iocp_connect_config.host).
 */
bool addr_unix(const char *cmd, const char *text, char *host, size_t hostlen);

/*
 * addr_unix_path(cmd, path, host, hostlen):
 * The operand of -U (nc's and ncat's spelling): a path, made "unix:PATH"
 * (an operand already written unix:... is taken as it is).
 */
bool addr_unix_path(const char *cmd, const char *path, char *host, size_t hostlen);

/*
 * addr_unix_mode(cmd, text, mode):
 * A socket file's permission bits in octal, 0-7777 (--unix-mode 0660).
 */
bool addr_unix_mode(const char *cmd, const char *text, unsigned *mode);

/* "host:port", "[host]:port" when host is an IPv6 address, or host alone
 * when it is "unix:..."; buf. */
const char *addr_format(const char *host, uint16_t port, char *buf, size_t len);

/*
 * addr_is_self_connected(sock):
 * True when a connected TCP socket's local address and port are its peer's:
 * a connect to a port in the ephemeral range that the system happened to
 * pick as the source port meets itself (a TCP simultaneous open), which is
 * not a listening service.
 */
bool addr_is_self_connected(iocp_socket_t sock);

#endif /* IOCPTOOL_ADDR_H */
