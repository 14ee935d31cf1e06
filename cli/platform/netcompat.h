/* SPDX-License-Identifier: MIT */
/*
 * The socket headers the subcommands need for addresses and name lookups
 * (inet_pton, getaddrinfo): POSIX's, or Winsock's.  On Windows Winsock is
 * started before main() runs (winsock_win.c).
 */
#ifndef IOCPTOOL_NETCOMPAT_H
#define IOCPTOOL_NETCOMPAT_H

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#endif /* IOCPTOOL_NETCOMPAT_H */
