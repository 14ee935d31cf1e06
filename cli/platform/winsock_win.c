/* SPDX-License-Identifier: MIT */
/*
 * Winsock must be started before the first name lookup or address parse,
 * and the subcommands parse addresses (--allow, targets) before any engine
 * exists.  Starting it once, before main(), keeps that out of the common
 * code; the system cleans up at exit.
 */
#include <winsock2.h>

__attribute__((constructor)) static void winsock_start(void)
{
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
}
