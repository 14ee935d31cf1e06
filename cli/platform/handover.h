/* SPDX-License-Identifier: MIT */
/*
 * Hand-over of a listening port between two processes (relay --reuseport),
 * without a refused connection.
 *
 * With SO_REUSEPORT the kernel spreads new connections over every socket
 * bound to the port, and a listening socket that closes resets whatever
 * sits in its accept queue.  So the new process steers every new
 * connection to itself as soon as it listens (a classic BPF program on the
 * port's socket group: "the second socket", which is the newcomer while
 * two share the port; with one socket the index is out of range and the
 * kernel falls back to its hash, i.e. that one socket), and the old one,
 * asked to drain, accepts until its queue stays empty before it closes.
 * No eBPF, no privilege, no sysctl.
 */
#ifndef IOCPTOOL_HANDOVER_H
#define IOCPTOOL_HANDOVER_H

#include <stdbool.h>

#include "iocp.h"

/* Whether this platform can share a port between processes this way. */
bool handover_supported(void);

/* Send the port's new connections to the newest socket of its group (call
 * on a listening socket with SO_REUSEPORT).  0, or -1 with errno. */
int handover_steer_to_newest(iocp_socket_t sock);

/* Connections waiting in the accept queue of a listening socket, or -1
 * when the system does not say. */
int handover_queue_length(iocp_socket_t sock);

#endif /* IOCPTOOL_HANDOVER_H */
