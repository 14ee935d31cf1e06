/* SPDX-License-Identifier: MIT */
/*
 * What all backends share: finding one by name (the list of those this build
 * has is per platform: port_backends_posix.c, port_backends_win.c), the
 * per-handle bind tracking of seed 2c, and the few decisions the engine
 * makes the same way whatever the backend.
 *
 * DIOCP's bind2IOCPHandle returned 0 when a pooled socket was bound to the
 * port a second time, and the caller could not tell that from a real
 * failure.  Here the bound state lives in the handle: a second bind is
 * refused before the OS sees it, and a real failure carries the OS's error.
 */
#include "port.h"

#include <string.h>

#include "fault.h"
#include "sockutil.h"

const struct iocp_port_ops *iocp__port_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; iocp__port_backends[i]; i++)
        if (strcmp(iocp__port_backends[i]->name, name) == 0)
            return iocp__port_backends[i];
    return NULL;
}

void iocp__handle_init(struct iocp_handle *h, iocp_socket_t sock, enum iocp_handle_kind kind)
{
    memset(h, 0, sizeof *h);
    h->sock = sock;
    h->kind = (uint8_t)kind;
}

int iocp__port_bind(struct iocp_port *port, struct iocp_handle *h)
{
    if (h->bound)
        return IOCP_EALREADY;
    int rc = iocp__fault_check(IOCP_FAULT_BIND);
    if (rc == 0)
        rc = port->ops->bind(port, h);
    if (rc < 0)
        return rc;
    h->bound = true;
    h->port = port;
    return 0;
}

void iocp__port_unbind(struct iocp_handle *h)
{
    if (!h->bound)
        return;
    h->port->ops->unbind(h->port, h);
    h->bound = false;
}

bool iocp__port_recycle(struct iocp_handle *h)
{
    if (!h->bound || !h->port->ops->recycle || !h->port->ops->recycle(h->port, h))
        return false;
    h->bound = false;
    return true;
}

int iocp__port_connect_socket(struct iocp_port *port, int family, iocp_socket_t *out,
                              bool *reused)
{
    *reused = false;
    if (port->ops->connect_socket)
        return port->ops->connect_socket(port, family, out, reused);
    return iocp__socket_stream(family, out);
}

bool iocp__port_wait_lasting(int rc)
{
    switch (rc) {
    case IOCP_EINTR:   /* a signal */
    case IOCP_EAGAIN:  /* the kernel had no memory for the submission */
    case IOCP_EBUSY:   /* the completion queue overflowed */
    case IOCP_ENOMEM:  /* the port could not grow its queue */
    case IOCP_ENOBUFS:
        return false;
    default:
        return rc < 0;
    }
}
