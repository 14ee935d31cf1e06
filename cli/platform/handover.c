/* SPDX-License-Identifier: MIT */
/* handover.h: Linux has it (SO_ATTACH_REUSEPORT_CBPF, TCP_INFO on a
 * listening socket); elsewhere the answers say it does not. */
#include "handover.h"

#ifdef __linux__
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

bool handover_supported(void)
{
    return true;
}

int handover_steer_to_newest(iocp_socket_t sock)
{
    /* "Return 1": the index of the socket that joined second.  While one
     * relay drains and its successor listens, that is the successor; when
     * the old one has closed, the group has one socket, 1 is out of range
     * and the kernel picks by hash among one.  The program stays with the
     * group, so each successor in turn takes over. */
    struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 1)};
    struct sock_fprog prog = {.len = 1, .filter = code};
    return setsockopt(sock, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

int handover_queue_length(iocp_socket_t sock)
{
    /* For a listening socket, tcpi_unacked is the accept queue's length
     * (what ss shows as Recv-Q). */
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    return (int)ti.tcpi_unacked;
}

#else

bool handover_supported(void)
{
    return false;
}

int handover_steer_to_newest(iocp_socket_t sock)
{
    (void)sock;
    return -1;
}

int handover_queue_length(iocp_socket_t sock)
{
    (void)sock;
    return -1;
}

#endif
