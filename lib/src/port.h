/* SPDX-License-Identifier: MIT */
/*
 * The completion port: the one abstraction every backend implements.
 *
 * It is shaped after Windows' I/O completion ports, because that is the
 * model the library brings to every platform:
 *
 *  - a port is opened, and sockets (or other handles) are bound to it;
 *  - an operation (accept, connect, recv, send, read, write) is submitted as
 *    a request, and exactly one completion comes back for it, carrying the
 *    result, unless the request is multishot (then completions keep coming,
 *    flagged IOCP_EV_MORE, until one arrives without that flag);
 *  - cancelling a request makes it complete with IOCP_ECANCELED (or with its
 *    real result if it finished first): a submitted request is never simply
 *    forgotten, so its memory may only be reused after its last completion;
 *  - any thread may post a packet (a 32-bit code and a 64-bit argument) to a
 *    port; it comes back from wait() like a completion.  Packets carry no
 *    pointer that the port must free, so a failed post leaks nothing (seed 2a);
 *  - wait() returns a batch of completions.
 *
 * io_uring maps onto this directly (SQE in, CQE out; multishot requests;
 * async cancel).  epoll turns readiness into the same completions: a
 * submitted recv waits in the handle until the socket is readable, then the
 * backend performs the recv and queues the completion.  IOCP is the model
 * itself.
 *
 * Threads: a port is served by the workers the engine gives it.  On Linux each
 * worker has its own port and only that worker submits to it, cancels on it
 * and waits on it; post() alone may be called from any thread.  A port whose
 * ops have `shared` set (IOCP) is one port for all workers, and all its
 * functions may be called from any thread.
 */
#ifndef IOCP_PORT_H
#define IOCP_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "list.h"

#ifndef _WIN32
#include <sys/socket.h>
#include <netinet/in.h>
#else
#include <winsock2.h>
#include <ws2tcpip.h>
/* What POSIX calls the type of sa_family; Windows calls it ADDRESS_FAMILY. */
typedef ADDRESS_FAMILY sa_family_t;
#endif

struct iocp_port;
struct iocp_req;
struct iocp_worker;

enum iocp_op {
    IOCP_OP_NONE = 0,
    IOCP_OP_ACCEPT,  /* accept a connection on a listening socket */
    IOCP_OP_CONNECT, /* connect a socket to req->addr */
    IOCP_OP_RECV,    /* receive into req->buf, or into a port-provided buffer */
    IOCP_OP_SEND,    /* send req->buf[0..len) */
    IOCP_OP_READ,    /* read a non-socket handle (pipe, tty, file) */
    IOCP_OP_WRITE,   /* write a non-socket handle */
    IOCP_OP_SPLICE,  /* move bytes between a socket and a pipe in the kernel (Linux) */
    IOCP_OP_RECVMSG, /* datagrams in, with their source (struct iocp_msg) */
    IOCP_OP_SENDMSG, /* datagrams out, a batch (struct iocp_msg_out) */
    IOCP_OP_COUNT
};

/* What kind of handle a iocp_handle wraps; decides how a backend serves it. */
enum iocp_handle_kind {
    IOCP_HANDLE_SOCKET = 0,
    IOCP_HANDLE_PIPE,    /* pipe, FIFO or character device that can be polled */
    IOCP_HANDLE_FILE,    /* regular file: always "ready"; no readiness API */
};

/*
 * A handle bound to a port.  The bound state lives with the handle, so a
 * socket that is reused (Windows' TF_REUSE_SOCKET) keeps it and is never
 * bound a second time (seed 2c).  One socket may have several handles, one
 * per port (a listening socket shared by every worker on Linux).
 */
struct iocp_handle {
    iocp_socket_t sock;
    uint8_t kind;             /* enum iocp_handle_kind */
    bool bound;               /* bound to `port` */
    /* A nonblocking SOCK_STREAM socket the library accepted or created
     * itself (a connection's, not a user's pipe): bind need not ask the
     * system what it is, two system calls per connection on epoll. */
    bool own_stream;
    struct iocp_port *port;
    /* Backend state.  epoll: the requests waiting for readiness, the
     * readiness last seen and the port list the handle is queued on; uring
     * and iocp leave them alone.  Set up by the epoll backend's bind. */
    struct iocp_req *wait_in;     /* accept or recv or read waiting to be served */
    struct iocp_req *wait_out;    /* connect or send or write waiting */
    struct iocp_list ready_link;  /* epoll: in the port's ready or buffer-wait list */
    uint8_t listed;               /* epoll: which of those lists (0: none) */
    bool ready_in;                /* epoll: readable (or EOF or error) until EAGAIN */
    bool ready_out;               /* epoll: writable until EAGAIN or a short write */
    bool hup;                     /* epoll: hang-up or error seen: reads never block again */
    bool polled;                  /* epoll: in the epoll set (regular files are not) */
    bool drains;                  /* epoll: a short read means nothing is left to read */
    bool held;                    /* epoll: a multishot accept's completion is undelivered */
    bool filled;                  /* epoll: the last provided-buffer read filled its buffer */
#ifdef _WIN32
    /* iocp backend state, set up by its bind.  wait_in is the armed
     * multishot receive; ready_link/listed park it while every provided
     * buffer is lent out. */
    uint16_t family;              /* sockets: AF_INET or AF_INET6 (AcceptEx, ConnectEx) */
    uint8_t io;                   /* how the handle is served (port_iocp.c) */
    uint8_t rstate;               /* the multishot receive's phase (port_iocp.c) */
    bool rcancel;                 /* a cancel of the multishot receive is pending */
    uint32_t rbuf;                /* in R_DATA: the buffer whose completion is out */
    bool skip;                    /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is on */
    bool outgoing;                /* ConnectEx ran on it: reused by ConnectEx only */
    uint64_t offset;              /* overlapped files: where the next read starts */
    struct iocp_stream_io *reader, *writer; /* threads for handles without overlapped I/O */
    struct iocp_msg_group *mgroup; /* datagram receives in flight (port_iocp.c) */
#endif
};

/*
 * Request flags, set by the submitter.
 */
#define IOCP_REQ_MULTI    0x01u /* multishot (accept and provided-buffer recv) */
/* Recv into a buffer the port provides (buf NULL).  `len` is a budget: a
 * single recv takes at most len bytes (0: one whole buffer); a multishot one
 * delivers at most len bytes over all its completions and then ends (its
 * last completion has no IOCP_EV_MORE; 0: no limit).  The budget is what
 * bounds the data a paused connection still receives: whatever a backend
 * had received before a cancel reached it stays within it.  The backend may
 * count the budget down in req->len while the request is in flight. */
#define IOCP_REQ_PROVIDED 0x02u
#define IOCP_REQ_NOSIGNAL 0x04u
/* SPLICE direction: without it the handle's socket is read into the pipe
 * end in `accepted`; with it the pipe end in `accepted` is drained into the
 * handle's socket.  The completion gives the bytes moved (0: EOF on the
 * socket).  Only backends whose ops have `splice` set accept it. */
#define IOCP_REQ_SPLICE_OUT 0x08u

/*
 * Datagrams.  IOCP_OP_RECVMSG is always multishot (IOCP_REQ_MULTI and
 * IOCP_REQ_PROVIDED): each completion is one datagram, in a buffer of the
 * port's own datagram pool (each holds the largest datagram there is, so
 * nothing is ever cut by the pool), `data` pointing to a struct iocp_msg
 * that says where the payload and the source address are.  req->len is the
 * most bytes delivered per datagram (0: IOCP_MSG_MAX); a longer one comes
 * cut to it with IOCP_MSG_TRUNC.  The result is the bytes delivered (0 is
 * an empty datagram, not an end); an error is the request's last
 * completion unless IOCP_EV_MORE says otherwise, and the caller re-arms.
 *
 * IOCP_OP_SENDMSG sends a batch: req->buf points to req->len struct
 * iocp_msg_out (at most IOCP_MSG_BATCH), each one datagram, sent in order.
 * The result is how many were handed to the network (at least 1), or the
 * error of the first one (the caller drops it and sends the rest again).
 * A full socket buffer is waited out by the port, never returned.
 */
#define IOCP_MSG_MAX   65535u
#define IOCP_MSG_BATCH 64u
#define IOCP_MSG_TRUNC 0x1u

struct iocp_msg {
    const void *payload;
    const struct sockaddr *from;
    uint32_t len;     /* bytes at payload: the completion's result */
    uint32_t fromlen;
    uint32_t flags;   /* IOCP_MSG_TRUNC */
};

struct iocp_msg_out {
    const void *data;
    const struct sockaddr *to; /* NULL: the connected peer */
    uint32_t len;
    uint32_t tolen;
};

/*
 * Completion flags.
 */
#define IOCP_EV_MORE   0x01u /* a multishot request stays armed */
#define IOCP_EV_BUFFER 0x02u /* data is in a port buffer: ev->data, released after dispatch */

/*
 * A request.  The owner embeds it (a connection embeds its recv and send
 * requests), fills the fields for the operation and sets `done`; completions
 * are dispatched through that pointer (seed 2d), never through a switch on
 * the operation.  Between submit and its last completion the request belongs
 * to the port: the owner must not reuse or free it.
 */
struct iocp_req {
#ifdef _WIN32
    /* The OVERLAPPED comes first, so the pointer GetQueuedCompletionStatusEx
     * returns is the request itself. */
    OVERLAPPED ov;
#endif
    /* The completion function: result is bytes (>= 0) or a negative IOCP_E*
     * code; flags are IOCP_EV_*; data is the port's buffer when
     * IOCP_EV_BUFFER is set, otherwise req->buf. */
    void (*done)(struct iocp_req *req, int32_t result, uint32_t flags, void *data);
    struct iocp_handle *handle;
    void *buf;
    /* The worker that submitted it, set by the engine's submit: a completion
     * dequeued by any thread of a shared port is dispatched under its lock. */
    struct iocp_worker *owner;
    /* ACCEPT: the accepted socket comes back in `accepted`, the peer in
     * `addr`; buf/len give IOCP_ACCEPT_SCRATCH bytes of scratch space, which
     * the iocp backend needs for AcceptEx's addresses (others ignore it).
     * CONNECT: the target is in `addr`. */
    struct sockaddr_storage *addr;
    iocp_socket_t accepted;
    union {
        uint32_t addrlen;
        /* A SEND has no address: conn.c keeps here the id of the receive
         * buffer it sends from, when it sends without a copy. */
        uint32_t kept_buf;
    };
    uint32_t len;
    uint8_t op;          /* enum iocp_op */
    uint8_t flags;       /* IOCP_REQ_* */
    /* Submitted, last completion not yet dispatched.  On a shared port the
     * backend leaves it set until the caller has dispatched that completion
     * (the engine clears it under the owner's lock): the owner may test it
     * on another thread while the completion is dequeued.  (The fields are
     * ordered to leave no padding: a connection embeds two requests.) */
    bool in_flight;
};

/* Scratch space an accept request carries: AcceptEx writes both addresses,
 * each in a sockaddr_storage plus 16 bytes. */
#define IOCP_ACCEPT_SCRATCH (2 * (sizeof(struct sockaddr_storage) + 16))

/*
 * One completion, as wait() returns it.  A packet posted with post() comes
 * back with req NULL and its code and arg.
 */
struct iocp_event {
    struct iocp_req *req;
    int32_t result;
    uint32_t flags;
    void *data;          /* IOCP_EV_BUFFER: the port's buffer holding `result` bytes */
    uint32_t buf_id;     /* the port's token for that buffer (release_buffer) */
    uint32_t code;       /* packets */
    uint64_t arg;        /* packets */
};

struct iocp_port_config {
    unsigned entries;       /* submission queue / batch size hint */
    unsigned buffer_count;  /* provided receive buffers (uring: ring entries, power of two) */
    unsigned buffer_size;   /* bytes per provided receive buffer */
    unsigned workers;       /* threads that will wait on a shared port */
};

struct iocp_port_ops {
    const char *name;       /* "uring", "epoll", "iocp": printed by --version and stats */
    bool shared;            /* one port for every worker (iocp) or one per worker */
    bool splice;            /* IOCP_OP_SPLICE is supported */
    /* Servers keep a pool of single accepts on this per-worker port rather
     * than one multishot accept: io_uring's multishot accept has one
     * address buffer for every connection, so each would cost a
     * getpeername(2), while single accepts each write their own. */
    bool single_accepts;
    /* Open a port; 0 or a negative code (the caller falls back to another backend). */
    int (*open)(struct iocp_port **out, const struct iocp_port_config *cfg);
    /* Bind a handle to the port.  Called once per handle: the common code
     * refuses a second bind before it gets here (seed 2c). */
    int (*bind)(struct iocp_port *port, struct iocp_handle *h);
    /* Forget a handle before its socket is closed (epoll: EPOLL_CTL_DEL).
     * Every request on it must have completed. */
    void (*unbind)(struct iocp_port *port, struct iocp_handle *h);
    /* Start the operation in req.  0: the completion will come from wait().
     * A negative code: nothing was started, no completion will come, the
     * caller still owns req. */
    int (*submit)(struct iocp_port *port, struct iocp_req *req);
    /* Ask for req to complete early with IOCP_ECANCELED.  Harmless if it
     * already completed.  The completion still comes through wait(). */
    int (*cancel)(struct iocp_port *port, struct iocp_req *req);
    /* Queue a packet.  0, or a negative code: the packet was not queued. */
    int (*post)(struct iocp_port *port, uint32_t code, uint64_t arg);
    /* Wait up to timeout_ms (-1: forever, 0: poll) for completions; fill up
     * to max events and return how many, or a negative code.  A timeout or
     * a signal is not an error (0).  iocp__port_wait_lasting() tells an
     * error that the next wait may not have (no memory for now) from one
     * that says the port is gone (its descriptor closed or replaced). */
    int (*wait)(struct iocp_port *port, struct iocp_event *events, int max, int timeout_ms);
    /* Give a provided buffer back after its completion was dispatched. */
    void (*release_buffer)(struct iocp_port *port, uint32_t buf_id);
    /* Optional (NULL: never).  Take a gracefully closing socket for reuse
     * instead of letting the caller close it (iocp: DisconnectEx with
     * TF_REUSE_SOCKET, then a pool that AcceptEx and ConnectEx draw from).
     * Every request on h must have completed.  true: the port owns the
     * socket and h is unbound; false: nothing happened, the caller unbinds
     * and closes. */
    bool (*recycle)(struct iocp_port *port, struct iocp_handle *h);
    /* Optional (NULL: a new socket).  A socket for an outgoing connection:
     * iocp, with socket reuse on, may hand out one that DisconnectEx gave
     * back, still bound to the port and to a local address (*reused true:
     * bind() knows it, and it must not be bound to a source address). */
    int (*connect_socket)(struct iocp_port *port, int family, iocp_socket_t *out, bool *reused);
    /* Close the port.  Every handle must have been unbound and every
     * request completed. */
    void (*close)(struct iocp_port *port);
    /* Optional (NULL: never).  Send from buf on h at once, outside any
     * request, for a caller whose send queue is empty and who has no send
     * in flight on h: no copy, no completion.  Returns the bytes the socket
     * took (0..len) and never an error: what it did not take (it would
     * block, or failed) the caller queues as a normal send, which then
     * reports the error the usual way. */
    uint32_t (*send_now)(struct iocp_port *port, struct iocp_handle *h, const void *buf,
                         uint32_t len);
    /* Optional (NULL: never).  Whether the caller may keep provided buffer
     * buf_id after its completion has been dispatched, to send from it
     * without a copy, and release it itself once that send is done.  false
     * when the port is short of buffers and needs this one back soon.  Asks
     * only; nothing changes in the port. */
    bool (*keep_buffer)(struct iocp_port *port, uint32_t buf_id);
};

/* Every port starts with the ops it was opened with. */
struct iocp_port {
    const struct iocp_port_ops *ops;
    uint32_t buffer_size; /* bytes per provided receive buffer, set by open() */
};

/* The backends this build has, best first.  NULL-terminated. */
extern const struct iocp_port_ops *const iocp__port_backends[];

/* The backend called name, or NULL. */
const struct iocp_port_ops *iocp__port_find(const char *name);

/*
 * iocp__port_bind(port, h):
 * Bind h to port once.  IOCP_EALREADY if h is already bound (to this or
 * another port); the OS is not asked.  A real failure comes back with the
 * OS's error and h stays unbound.
 */
int iocp__port_bind(struct iocp_port *port, struct iocp_handle *h);

/* Unbind h if it is bound. */
void iocp__port_unbind(struct iocp_handle *h);

/* Hand h's socket to its port for reuse (ops.recycle); false when the port
 * does not take it, and the caller then unbinds and closes as usual. */
bool iocp__port_recycle(struct iocp_handle *h);

/* A socket for an outgoing connection on port (ops.connect_socket, or a
 * new one); *reused says whether it came back from an earlier connection. */
int iocp__port_connect_socket(struct iocp_port *port, int family, iocp_socket_t *out,
                              bool *reused);

/* True when an error from wait() means the port cannot be waited on again
 * (EBADF, EINVAL, EOPNOTSUPP...): the worker must end, not try again. */
bool iocp__port_wait_lasting(int rc);

/* Prepare a handle for sock. */
void iocp__handle_init(struct iocp_handle *h, iocp_socket_t sock, enum iocp_handle_kind kind);

#endif /* IOCP_PORT_H */
