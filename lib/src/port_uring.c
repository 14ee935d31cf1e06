/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend: the completion-port model on Linux's own completion
 * queue.  A request becomes one SQE whose user_data is the request itself, and
 * every CQE comes back as a completion for that request, so no lookup table
 * stands between the kernel and the request's done callback.  Accept and
 * provided-buffer recv may be multishot; received data lands in a ring of
 * buffers the port registers with the kernel (a provided buffer ring) and the
 * caller hands each buffer back with release_buffer().  Posts from other
 * threads go through the shared packet queue (postq.c), whose eventfd a
 * multishot poll watches.
 *
 * SQEs are only prepared by submit() and cancel(); they reach the kernel in
 * the next wait(), together with the wait itself, so a busy worker pays about
 * one system call per batch rather than one per request.
 *
 * A port belongs to one worker thread (port.h), which lets the ring be
 * created IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: completions
 * are then processed only when the worker asks for them, instead of
 * interrupting it.  The engine opens the port on its main thread and serves it
 * on a worker, while the kernel ties a single-issuer ring to the first task
 * that uses it; the ring is therefore created IORING_SETUP_R_DISABLED and the
 * worker enables it on its first submit(), cancel() or wait().
 */
#include "port.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "fault.h"
#include "postq.h"
#include "thread.h"

/* Defined at the end; open() stamps it on every port. */
extern const struct iocp_port_ops iocp__port_uring_ops;

/* The kernel writes the accepted peer's address length through a socklen_t
 * pointer straight into the request. */
_Static_assert(sizeof(socklen_t) == sizeof(uint32_t), "req->addrlen must be a socklen_t");

#define DEFAULT_ENTRIES      256u
#define DEFAULT_BUFFER_COUNT 256u
#define DEFAULT_BUFFER_SIZE  (16u * 1024u)
#define MAX_ENTRIES          32768u
/* The kernel refuses buffer rings of 65536 entries or more. */
#define MAX_BUFFER_COUNT     32768u
/* Each port has its own ring, so one buffer group id is enough. */
#define BUFFER_GROUP         0
/* Room for posts; they are rare next to completions. */
#define POSTQ_CAPACITY       4096u
/* Packets taken from the queue per drain call. */
#define DRAIN_CHUNK          64

/*
 * A cancel SQE's user_data is its target with the low bit set (a request is
 * pointer-aligned, so the bit is free): its CQE then says which request the
 * cancel was for.  The postq's poll uses the address of the postq itself.
 */
#define CANCEL_BIT 1u
_Static_assert(_Alignof(struct iocp_req) > CANCEL_BIT, "requests must leave the low bit free");

/*
 * Datagrams.  Received ones land in a second provided buffer ring (group
 * MSG_GROUP), set up by the first datagram receive, each buffer large
 * enough for the kernel's io_uring_recvmsg_out header, the source address
 * and the largest datagram; MSG_ID_BIT tells their ids from stream buffers'
 * in release_buffer.  A batch of sends is one linked chain of SENDMSG SQEs
 * sharing one user_data, a struct send_batch with BATCH_BIT set, whose
 * completions are counted there until the last one.
 */
#define MSG_GROUP        1
#define MSG_BUFFER_COUNT 64u
#define MSG_ID_BIT       0x80000000u
#define BATCH_BIT        2u

/*
 * A graceful close is an IORING_OP_CLOSE SQE (see uring_recycle) whose
 * success posts nothing; a failure's CQE carries CLOSE_UD, which no request
 * can be (a request is never at address 0), and is dropped.
 */
#define CLOSE_UD 0u

struct send_batch {
    struct send_batch *next;     /* in the port's list of batches in flight */
    struct iocp_req *req;
    uint32_t remaining;          /* SQEs whose CQE has not come */
    uint32_t ok;                 /* leading datagrams sent */
    int32_t err;                 /* the first failure */
    struct msghdr hdr[IOCP_MSG_BATCH];
    struct iovec iov[IOCP_MSG_BATCH];
};

/*
 * A request the port holds on to outside the kernel: a provided-buffer recv
 * that ran out of buffers and waits for release_buffer() (parked), or a
 * request whose cancel is in the kernel (cancelling).
 */
struct slot {
    struct iocp_req *req;
    bool cancelled; /* parked: cancel() was called; completes in the next wait() */
};

struct slots {
    struct slot *v;
    unsigned n;
    unsigned cap;
};

struct uring_port {
    struct iocp_port base;
    struct io_uring ring;
    bool enabled;       /* R_DISABLED ring enabled by its worker (or never disabled) */
    bool recv_limit;    /* the kernel ends a multishot recv after a byte count */
    bool poll_armed;    /* the multishot poll on the postq's eventfd is in the kernel */
    bool packets_ready; /* the eventfd fired, or a drain stopped with packets left */

    /* The provided buffer ring: buf_count entries describing buf_count
     * buffers of buf_size bytes in `bufs`. */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned char *bufs;
    size_t bufs_bytes;
    uint32_t buf_count;
    uint32_t buf_size;
    uint32_t held; /* buffers handed to the caller and not yet released */

    struct slots parked;
    struct slots cancelling;
    struct iocp_postq postq;

    /* Datagrams (see MSG_GROUP): the ring, its buffers, what each buffer's
     * completion describes, the multishot recvmsg's header template, and
     * the send batches in flight. */
    struct io_uring_buf_ring *mbr;
    size_t mbr_bytes;
    unsigned char *mbufs;
    size_t mbufs_bytes;
    uint32_t msg_size;
    uint32_t msg_held;
    struct iocp_msg msgs[MSG_BUFFER_COUNT];
    struct msghdr mshot;
    struct send_batch *batches;
    struct send_batch *spare;
};

static struct uring_port *to_uring(struct iocp_port *port)
{
    return iocp_container_of(port, struct uring_port, base);
}

/* --- small vectors of requests --------------------------------------------- */

static int slots_init(struct slots *s, unsigned cap)
{
    s->v = calloc(cap, sizeof *s->v);
    s->n = 0;
    s->cap = s->v ? cap : 0;
    return s->v ? 0 : IOCP_ENOMEM;
}

static int slots_push(struct slots *s, struct iocp_req *req)
{
    if (s->n == s->cap) {
        unsigned cap = s->cap ? s->cap * 2 : 16;
        struct slot *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return IOCP_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct slot){req, false};
    return 0;
}

static int slots_find(const struct slots *s, const struct iocp_req *req)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->v[i].req == req)
            return (int)i;
    return -1;
}

/* Order is kept, so parked requests are re-armed first come, first served. */
static void slots_remove_at(struct slots *s, unsigned i)
{
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
    s->n--;
}

static bool slots_remove(struct slots *s, const struct iocp_req *req)
{
    int i = slots_find(s, req);
    if (i < 0)
        return false;
    slots_remove_at(s, (unsigned)i);
    return true;
}

/* --- the ring --------------------------------------------------------------- */

/*
 * liburing 2.3 declares io_uring_enable_rings() but its shared library does
 * not export it (the symbol is missing from its version map), so the
 * registration is made through the raw io_uring_register() it does export.
 */
static int enable(struct uring_port *p)
{
    if (p->enabled)
        return 0;
    int rc = io_uring_register((unsigned)p->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (rc < 0)
        return rc;
    p->enabled = true;
    return 0;
}

/*
 * A free SQE.  When the SQ is full, what it holds goes to the kernel now
 * (it would have gone in the next wait() anyway), which is how a burst of
 * more requests than the SQ has entries still gets through.  A disabled ring
 * cannot take submissions; only open() prepares SQEs before enable(), and the
 * SQ is empty then.
 */
static struct io_uring_sqe *get_sqe(struct uring_port *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
    if (!sqe && p->enabled) {
        io_uring_submit(&p->ring);
        sqe = io_uring_get_sqe(&p->ring);
    }
    return sqe;
}

/*
 * Create the ring with the best flags the kernel accepts.  EINVAL means a
 * flag is unknown to this kernel, so the next set is tried; anything else
 * (EPERM or ENOSYS from a seccomp filter, ENOMEM from a memlock limit) means
 * io_uring itself is out of reach and the engine should fall back to epoll.
 *
 * The CQ is sized well above the SQ: one multishot request can post many
 * completions between two waits (a recv up to one per provided buffer).
 * Overflow would not lose completions (IORING_FEAT_NODROP) but costs a slow
 * path in the kernel.
 */
static int setup_ring(struct uring_port *p, unsigned entries, unsigned buf_count)
{
    static const unsigned tiers[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
            IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    unsigned cq = entries * 4 > buf_count ? entries * 4 : buf_count;
    int rc = IOCP_ENOSYS;

    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++) {
        struct io_uring_params params;
        memset(&params, 0, sizeof params);
        params.flags = tiers[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = cq;
        rc = io_uring_queue_init_params(entries, &p->ring, &params);
        if (rc == 0) {
            /* wait() passes its timeout to io_uring_enter directly
             * (5.11); without it liburing would need a timeout SQE. */
            if (!(params.features & IORING_FEAT_EXT_ARG)) {
                io_uring_queue_exit(&p->ring);
                return IOCP_ENOSYS;
            }
            p->enabled = !(tiers[i] & IORING_SETUP_R_DISABLED);
            return 0;
        }
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

/*
 * Refuse at open, not at the first request, a kernel that lacks what the
 * backend needs: the engine can fall back to epoll only here.  Multishot recv
 * has no opcode of its own; it came in 6.0 together with IORING_OP_SEND_ZC,
 * so that opcode stands for it.
 */
static int check_opcodes(struct uring_port *p)
{
    static const int needed[] = {
        IORING_OP_ACCEPT,   IORING_OP_CONNECT,      IORING_OP_RECV,
        IORING_OP_SEND,     IORING_OP_READ,         IORING_OP_WRITE,
        IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL, IORING_OP_SEND_ZC,
    };
    struct io_uring_probe *probe = io_uring_get_probe_ring(&p->ring);
    if (!probe)
        return IOCP_ENOSYS;
    int rc = 0;
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!io_uring_opcode_supported(probe, needed[i]))
            rc = IOCP_ENOSYS;
    io_uring_free_probe(probe);
    return rc;
}

static void *buffer_addr(struct uring_port *p, uint32_t bid)
{
    return p->bufs + (size_t)bid * p->buf_size;
}

/* Put buffer bid back at the ring's tail, where the kernel takes it from. */
static void give_back(struct uring_port *p, uint32_t bid)
{
    io_uring_buf_ring_add(p->br, buffer_addr(p, bid), p->buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(p->buf_count), 0);
    io_uring_buf_ring_advance(p->br, 1);
}

static void *msg_addr(struct uring_port *p, uint32_t bid)
{
    return p->mbufs + (size_t)bid * p->msg_size;
}

static void give_back_msg(struct uring_port *p, uint32_t bid)
{
    io_uring_buf_ring_add(p->mbr, msg_addr(p, bid), p->msg_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(MSG_BUFFER_COUNT), 0);
    io_uring_buf_ring_advance(p->mbr, 1);
}

/*
 * The datagram buffer ring, made on the first datagram receive: a port
 * that never sees one costs nothing.  Not populated in advance: most
 * datagrams are small, and only the pages they touch are ever mapped.
 */
static int setup_msg_buffers(struct uring_port *p)
{
    if (p->mbr)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    size_t align = page > 0 ? (size_t)page : 4096;
    size_t head = sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage);
    p->msg_size = (uint32_t)((head + IOCP_MSG_MAX + 63u) & ~(size_t)63u);
    p->mbr_bytes = (MSG_BUFFER_COUNT * sizeof(struct io_uring_buf) + align - 1) & ~(align - 1);
    p->mbufs_bytes = (size_t)MSG_BUFFER_COUNT * p->msg_size;
    void *mem = mmap(NULL, p->mbr_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return iocp__err_from_errno(errno);
    void *bufs =
        mmap(NULL, p->mbufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bufs == MAP_FAILED) {
        int rc = iocp__err_from_errno(errno);
        munmap(mem, p->mbr_bytes);
        return rc;
    }
    io_uring_buf_ring_init(mem);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = MSG_BUFFER_COUNT;
    reg.bgid = MSG_GROUP;
    int rc = io_uring_register_buf_ring(&p->ring, &reg, 0);
    if (rc < 0) {
        munmap(bufs, p->mbufs_bytes);
        munmap(mem, p->mbr_bytes);
        return rc;
    }
    p->mbr = mem;
    p->mbufs = bufs;
    for (uint32_t i = 0; i < MSG_BUFFER_COUNT; i++)
        give_back_msg(p, i);
    /* Every multishot recvmsg asks for the same: the source address, no
     * control data.  The kernel reads this when it takes the SQE. */
    memset(&p->mshot, 0, sizeof p->mshot);
    p->mshot.msg_namelen = sizeof(struct sockaddr_storage);
    return 0;
}

/*
 * The provided buffer ring, registered by hand: liburing 2.3 has no
 * io_uring_setup_buf_ring().  The ring itself must be page-aligned memory
 * the kernel can pin, hence mmap; the buffers come from mmap too so that a
 * large pool costs nothing until it is touched.
 */
static int setup_buffers(struct uring_port *p, uint32_t count, uint32_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t align = page > 0 ? (size_t)page : 4096;
    int rc;

    p->buf_count = count;
    p->buf_size = size;
    p->br_bytes = ((size_t)count * sizeof(struct io_uring_buf) + align - 1) & ~(align - 1);
    p->bufs_bytes = (size_t)count * size;

    void *mem = mmap(NULL, p->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return iocp__err_from_errno(errno);
    p->br = mem;
    /* MAP_POPULATE: the kernel cycles through every buffer of the ring in
     * turn, so all of them are touched sooner or later; fault them in now,
     * as a fixed cost, rather than let them look like per-connection growth. */
    mem = mmap(NULL, p->bufs_bytes, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        rc = iocp__err_from_errno(errno);
        goto err1;
    }
    p->bufs = mem;

    io_uring_buf_ring_init(p->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)p->br;
    reg.ring_entries = count;
    reg.bgid = BUFFER_GROUP;
    rc = io_uring_register_buf_ring(&p->ring, &reg, 0);
    if (rc < 0)
        goto err2;

    int mask = io_uring_buf_ring_mask(count);
    for (uint32_t i = 0; i < count; i++)
        io_uring_buf_ring_add(p->br, buffer_addr(p, i), size, (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(p->br, (int)count);
    return 0;

err2:
    munmap(p->bufs, p->bufs_bytes);
err1:
    munmap(p->br, p->br_bytes);
    return rc;
}

/*
 * Watch the postq's eventfd.  A multishot poll posts a CQE for every
 * wake-up and stays armed; should the kernel end it anyway (CQ overflow,
 * say), wait() arms it again.
 */
static void arm_poll(struct uring_port *p)
{
    struct io_uring_sqe *sqe = get_sqe(p);
    if (!sqe)
        return;
    io_uring_prep_poll_multishot(sqe, p->postq.efd, POLLIN);
    io_uring_sqe_set_data(sqe, &p->postq);
    p->poll_armed = true;
}

/*
 * Whether this kernel takes a byte limit for a multishot recv (sqe->optlen,
 * which liburing 2.3's headers still call file_index): the recv then ends
 * once it has received that many bytes.  Older kernels refuse the field
 * with EINVAL when they prepare the request.  The probe runs once per
 * process, on a small ring of its own (a port's ring may still be disabled
 * when it opens): a multishot recv with a limit, on a socket that holds one
 * byte, for a buffer group that does not exist.  A kernel that knows the
 * limit gets past the preparation and fails for want of a buffer.
 */
static bool kernel_has_recv_limit(void)
{
    static iocp_atomic_int known; /* 0: not probed, 1: yes, 2: no */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k)
        return k == 1;

    bool yes = false;
    struct io_uring ring;
    int sv[2];
    if (io_uring_queue_init(2, &ring, 0) < 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        struct io_uring_cqe *cqe;
        if (send(sv[1], "x", 1, MSG_NOSIGNAL) == 1 && sqe) {
            io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = 0x7fff;
            sqe->file_index = 1;
            if (io_uring_submit_and_wait(&ring, 1) >= 0 && io_uring_peek_cqe(&ring, &cqe) == 0) {
                yes = cqe->res != -EINVAL;
                io_uring_cqe_seen(&ring, cqe);
            }
        }
        close(sv[0]);
        close(sv[1]);
    }
    io_uring_queue_exit(&ring);
out:
    atomic_store_explicit(&known, yes ? 1 : 2, memory_order_relaxed);
    return yes;
}

/* --- requests ---------------------------------------------------------------- */

/*
 * The kernel's limit for a multishot recv with a budget (0: none).  The
 * kernel checks the limit after each buffer it fills, so the last buffer
 * may take it up to a buffer's size minus one past the limit: the limit is
 * the budget less that.  Budgets of a buffer or less get a single recv.
 */
static uint32_t recv_limit_for(const struct uring_port *p, uint32_t budget)
{
    return budget ? budget - (p->buf_size - 1) : 0;
}

/* The fault point send_short: the kernel is handed only the first half of
 * a stream send, which then completes short, as when the socket buffer had
 * room for part of it (fault.h). */
static uint32_t send_length(uint32_t len)
{
    return len > 1 && iocp__fault_check(IOCP_FAULT_SEND_SHORT) ? len / 2 : len;
}

/* Fill sqe for req.  Used by submit() and again to re-arm a parked recv. */
static void prep(struct uring_port *p, struct io_uring_sqe *sqe, struct iocp_req *req)
{
    int fd = req->handle->sock;

    switch (req->op) {
    case IOCP_OP_ACCEPT:
        /* A multishot accept would have every connection's peer address
         * written to the same place before the completions are read, so
         * it is asked for none; completion fills it in per connection. */
        if (req->flags & IOCP_REQ_MULTI) {
            io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        } else if (req->addr) {
            req->addrlen = sizeof *req->addr;
            io_uring_prep_accept(sqe, fd, (struct sockaddr *)req->addr, (socklen_t *)&req->addrlen,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        } else {
            io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        }
        break;
    case IOCP_OP_CONNECT:
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)req->addr, req->addrlen);
        break;
    case IOCP_OP_RECV:
        if (req->flags & IOCP_REQ_PROVIDED) {
            /* A multishot recv leaves each length to the buffers; its
             * budget (port.h) is the kernel's byte limit.  A kernel without
             * that limit would fill buffers until the socket is empty, far
             * past a budget, so there the budget gets single recvs: one
             * buffer each, the caller re-arming after each.  A single recv
             * may ask for less than a buffer. */
            if ((req->flags & IOCP_REQ_MULTI) &&
                (!req->len || (p->recv_limit && req->len > p->buf_size))) {
                io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
                sqe->file_index = recv_limit_for(p, req->len); /* optlen */
            } else {
                io_uring_prep_recv(sqe, fd, NULL, req->len, 0);
            }
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = BUFFER_GROUP;
        } else {
            io_uring_prep_recv(sqe, fd, req->buf, req->len, 0);
        }
        break;
    case IOCP_OP_SEND:
        /* A peer that went away must give EPIPE, not kill the process. */
        io_uring_prep_send(sqe, fd, req->buf, send_length(req->len), MSG_NOSIGNAL);
        break;
    case IOCP_OP_READ:
        /* Offset -1: the file position, which is what a pipe or tty
         * needs and what makes consecutive reads of a file sequential. */
        io_uring_prep_read(sqe, fd, req->buf, req->len, (uint64_t)-1);
        break;
    case IOCP_OP_WRITE:
        io_uring_prep_write(sqe, fd, req->buf, req->len, (uint64_t)-1);
        break;
    case IOCP_OP_SPLICE:
        /* IORING_OP_SPLICE on a socket blocks a kernel worker thread until
         * data comes, one per idle connection: wait for readiness with a
         * poll instead, and splice without blocking when it fires. */
        io_uring_prep_poll_add(sqe, fd,
                               (req->flags & IOCP_REQ_SPLICE_OUT) ? POLLOUT : POLLIN | POLLRDHUP);
        break;
    case IOCP_OP_RECVMSG:
        /* One CQE per datagram, each in its own buffer with the kernel's
         * io_uring_recvmsg_out header and the source address before the
         * payload.  Multishot recvmsg came in 6.0, which open() requires. */
        io_uring_prep_recvmsg_multishot(sqe, fd, &p->mshot, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = MSG_GROUP;
        break;
    default:
        assert(!"unknown op");
        break;
    }
    io_uring_sqe_set_data(sqe, req);
}

/*
 * Give parked recvs back to the kernel.  Called when buffers may be
 * available again; a recv that still finds none simply parks again.
 * Requests stay parked while no SQE is free, and the next wait() retries.
 */
/* Whether the buffer group a parked recv takes from has a buffer free. */
static bool can_rearm(const struct uring_port *p, const struct iocp_req *req)
{
    if (req->op == IOCP_OP_RECVMSG)
        return p->msg_held < MSG_BUFFER_COUNT;
    return p->held < p->buf_count;
}

static void rearm_parked(struct uring_port *p)
{
    unsigned i = 0;
    while (i < p->parked.n) {
        if (p->parked.v[i].cancelled || !can_rearm(p, p->parked.v[i].req)) {
            i++;
            continue;
        }
        struct io_uring_sqe *sqe = get_sqe(p);
        if (!sqe)
            return;
        prep(p, sqe, p->parked.v[i].req);
        slots_remove_at(&p->parked, i);
    }
}

/* A parked recv that is not cancelled and has a buffer to take. */
static bool has_live_parked(const struct uring_port *p)
{
    for (unsigned i = 0; i < p->parked.n; i++)
        if (!p->parked.v[i].cancelled && can_rearm(p, p->parked.v[i].req))
            return true;
    return false;
}

static int uring_open(struct iocp_port **out, const struct iocp_port_config *cfg)
{
    unsigned entries = cfg && cfg->entries ? cfg->entries : DEFAULT_ENTRIES;
    unsigned count = cfg && cfg->buffer_count ? cfg->buffer_count : DEFAULT_BUFFER_COUNT;
    unsigned size = cfg && cfg->buffer_size ? cfg->buffer_size : DEFAULT_BUFFER_SIZE;
    int rc;

    if ((count & (count - 1)) != 0 || count > MAX_BUFFER_COUNT)
        return IOCP_EINVAL;
    if (entries > MAX_ENTRIES)
        entries = MAX_ENTRIES;

    struct uring_port *p = calloc(1, sizeof *p);
    if (!p)
        return IOCP_ENOMEM;
    p->base.ops = &iocp__port_uring_ops;
    p->base.buffer_size = size;
    p->recv_limit = kernel_has_recv_limit();

    rc = setup_ring(p, entries, count);
    if (rc < 0)
        goto err0;
    rc = check_opcodes(p);
    if (rc < 0)
        goto err1;
    rc = setup_buffers(p, count, size);
    if (rc < 0)
        goto err1;
    rc = iocp__postq_init(&p->postq, POSTQ_CAPACITY);
    if (rc < 0)
        goto err2;
    /* Parking and cancelling start with room, so the usual case never
     * allocates while completions are being handled. */
    rc = slots_init(&p->parked, 16);
    if (rc < 0)
        goto err3;
    rc = slots_init(&p->cancelling, 16);
    if (rc < 0)
        goto err4;

    arm_poll(p);
    *out = &p->base;
    return 0;

err4:
    free(p->parked.v);
err3:
    iocp__postq_fini(&p->postq);
err2:
    io_uring_unregister_buf_ring(&p->ring, BUFFER_GROUP);
    munmap(p->bufs, p->bufs_bytes);
    munmap(p->br, p->br_bytes);
err1:
    io_uring_queue_exit(&p->ring);
err0:
    free(p);
    return rc;
}

/* io_uring needs no association between a descriptor and a ring. */
static int uring_bind(struct iocp_port *port, struct iocp_handle *h)
{
    IOCP_UNUSED(port);
    IOCP_UNUSED(h);
    return 0;
}

static void uring_unbind(struct iocp_port *port, struct iocp_handle *h)
{
    IOCP_UNUSED(port);
    IOCP_UNUSED(h);
}

/*
 * A connection closing gracefully: its close goes into the ring with the
 * next submission instead of costing a close(2) of its own: one system
 * call less per connection, which is what a short-lived connection's
 * server otherwise spends besides io_uring_enter.  The descriptor
 * stays open until that submission, so its number cannot be reused before
 * the connection is gone from the registry.  Called on the worker that
 * owns the ring, like submit.  SQEs still unsubmitted when the port closes
 * are closed there (uring_close).
 */
static bool uring_recycle(struct iocp_port *port, struct iocp_handle *h)
{
    struct uring_port *p = to_uring(port);
    if (!p->enabled || h->sock < 0)
        return false;
    struct io_uring_sqe *sqe = get_sqe(p);
    if (!sqe)
        return false;
    io_uring_prep_close(sqe, h->sock);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, CLOSE_UD);
    return true;
}

/* Close the descriptors of close SQEs the kernel never took: the worker
 * stopped before its next submission (or that submission failed).  From
 * the kernel's head, so that entries flushed but not consumed count too. */
static void close_unsubmitted(struct uring_port *p)
{
    struct io_uring_sq *sq = &p->ring.sq;
    for (unsigned i = IO_URING_READ_ONCE(*sq->khead); i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & *sq->kring_mask];
        if (sqe->opcode == IORING_OP_CLOSE && sqe->user_data == CLOSE_UD)
            close(sqe->fd);
    }
    sq->sqe_head = sq->sqe_tail;
}

/*
 * A batch of datagrams: one SENDMSG SQE each, linked so that they go out in
 * order and a failure stops the rest (they complete ECANCELED, unsent); the
 * caller then learns how many went before it.  The chain is never split
 * between two submissions: with too little room in the SQ even after
 * flushing it, the batch is cut to what fits and the caller sends the rest.
 */
static int submit_batch(struct uring_port *p, struct iocp_req *req)
{
    const struct iocp_msg_out *out = req->buf;
    if (req->flags || !out || !req->len || req->len > IOCP_MSG_BATCH)
        return IOCP_EINVAL;
    int rc = enable(p);
    if (rc < 0)
        return rc;
    unsigned n = req->len;
    if (io_uring_sq_space_left(&p->ring) < n)
        io_uring_submit(&p->ring);
    unsigned room = io_uring_sq_space_left(&p->ring);
    if (room == 0)
        return IOCP_EAGAIN;
    if (n > room)
        n = room;
    struct send_batch *b = p->spare;
    if (b)
        p->spare = NULL;
    else if (!(b = malloc(sizeof *b)))
        return IOCP_ENOMEM;
    b->req = req;
    b->remaining = n;
    b->ok = 0;
    b->err = 0;
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
        b->iov[i] = (struct iovec){.iov_base = (void *)out[i].data, .iov_len = out[i].len};
        memset(&b->hdr[i], 0, sizeof b->hdr[i]);
        b->hdr[i].msg_name = (void *)out[i].to;
        b->hdr[i].msg_namelen = out[i].to ? out[i].tolen : 0;
        b->hdr[i].msg_iov = &b->iov[i];
        b->hdr[i].msg_iovlen = 1;
        io_uring_prep_sendmsg(sqe, req->handle->sock, &b->hdr[i], MSG_NOSIGNAL);
        if (i + 1 < n)
            sqe->flags |= IOSQE_IO_LINK;
        io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)b | BATCH_BIT);
    }
    b->next = p->batches;
    p->batches = b;
    req->in_flight = true;
    return 0;
}

static struct send_batch *batch_of(struct uring_port *p, const struct iocp_req *req)
{
    for (struct send_batch *b = p->batches; b; b = b->next)
        if (b->req == req)
            return b;
    return NULL;
}

/* One CQE of a batch; 1 with ev filled when it was the last. */
static int batch_part(struct uring_port *p, struct send_batch *b, int32_t res,
                      struct iocp_event *ev)
{
    if (res >= 0 && !b->err)
        b->ok++;
    else if (res < 0 && !b->err)
        b->err = res;
    if (--b->remaining > 0)
        return 0;
    struct iocp_req *req = b->req;
    /* Read the outcome before the batch is freed or kept as the spare. */
    int32_t result = b->ok ? (int32_t)b->ok : b->err;
    for (struct send_batch **pp = &p->batches; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    if (p->spare)
        free(b);
    else
        p->spare = b;
    req->in_flight = false;
    if (p->cancelling.n)
        slots_remove(&p->cancelling, req);
    *ev = (struct iocp_event){.req = req, .result = result, .data = req->buf};
    return 1;
}

static int uring_submit(struct iocp_port *port, struct iocp_req *req)
{
    struct uring_port *p = to_uring(port);

    assert(req && req->handle && req->done && !req->in_flight);
    /* Multishot exists for accept and provided-buffer recv only. */
    if (req->op <= IOCP_OP_NONE || req->op >= IOCP_OP_COUNT)
        return IOCP_EINVAL;
    if (req->op == IOCP_OP_SENDMSG)
        return submit_batch(p, req);
    if (req->op == IOCP_OP_RECVMSG && (req->flags & (IOCP_REQ_PROVIDED | IOCP_REQ_MULTI)) !=
                                          (IOCP_REQ_PROVIDED | IOCP_REQ_MULTI))
        return IOCP_EINVAL;
    if ((req->flags & IOCP_REQ_PROVIDED) && req->op != IOCP_OP_RECV && req->op != IOCP_OP_RECVMSG)
        return IOCP_EINVAL;
    if (req->op == IOCP_OP_SPLICE &&
        (req->accepted < 0 || !req->len || (req->flags & IOCP_REQ_MULTI)))
        return IOCP_EINVAL;
    if ((req->flags & IOCP_REQ_MULTI) && req->op != IOCP_OP_ACCEPT &&
        req->op != IOCP_OP_RECVMSG && !(req->op == IOCP_OP_RECV && (req->flags & IOCP_REQ_PROVIDED)))
        return IOCP_EINVAL;

    int rc = enable(p);
    if (rc < 0)
        return rc;
    if (req->op == IOCP_OP_RECVMSG && (rc = setup_msg_buffers(p)) < 0)
        return rc;
    struct io_uring_sqe *sqe = get_sqe(p);
    if (!sqe)
        return IOCP_EAGAIN;
    prep(p, sqe, req);
    req->in_flight = true;
    return 0;
}

static int uring_cancel(struct iocp_port *port, struct iocp_req *req)
{
    struct uring_port *p = to_uring(port);

    if (!req->in_flight)
        return 0;
    int rc = enable(p);
    if (rc < 0)
        return rc;

    /* A parked recv is in no kernel queue: it completes in the next wait(). */
    int i = slots_find(&p->parked, req);
    if (i >= 0) {
        p->parked.v[i].cancelled = true;
        return 0;
    }
    if (slots_find(&p->cancelling, req) >= 0)
        return 0;

    /* Remember the cancel: a recv whose last completion is already
     * ENOBUFS must not be parked and re-armed behind the caller's back. */
    rc = slots_push(&p->cancelling, req);
    if (rc < 0)
        return rc;
    struct io_uring_sqe *sqe = get_sqe(p);
    if (!sqe) {
        p->cancelling.n--;
        return IOCP_EAGAIN;
    }
    struct send_batch *b = req->op == IOCP_OP_SENDMSG ? batch_of(p, req) : NULL;
    if (b)
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)b | BATCH_BIT, IORING_ASYNC_CANCEL_ALL);
    else
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)req, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)req | CANCEL_BIT);
    /* Hand the cancel to the kernel now rather than with the next wait():
     * a pause must stop a multishot recv before it fills more buffers, and
     * a submit that does not wait runs no deferred task work, so nothing
     * more is received on the way in. */
    io_uring_submit(&p->ring);
    return 0;
}

static int uring_post(struct iocp_port *port, uint32_t code, uint64_t arg)
{
    return iocp__postq_push(&to_uring(port)->postq, code, arg);
}

/* --- completions -------------------------------------------------------------- */

/* Accept: the new socket goes to req->accepted and the result is 0. */
static int32_t finish_accept(struct iocp_req *req, int32_t res)
{
    if (res < 0) {
        req->accepted = IOCP_INVALID_SOCKET;
        return res;
    }
    req->accepted = res;
    if ((req->flags & IOCP_REQ_MULTI) && req->addr) {
        socklen_t len = sizeof *req->addr;
        if (getpeername(res, (struct sockaddr *)req->addr, &len) == 0)
            req->addrlen = len;
        else
            req->addrlen = 0;
    }
    return 0;
}

/*
 * A splice's poll fired: move what the socket (or pipe) has, without
 * blocking.  Returns 0 when nothing could move and the poll was armed
 * again (the request stays in flight), 1 when *res holds the result.
 */
static int splice_ready(struct uring_port *p, struct iocp_req *req, int32_t *res)
{
    if (*res < 0)
        return 1; /* the poll failed or was cancelled */
    bool out = req->flags & IOCP_REQ_SPLICE_OUT;
    int sock = req->handle->sock;
    ssize_t n = out ? splice(req->accepted, NULL, sock, NULL, req->len,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                    : splice(sock, NULL, req->accepted, NULL, req->len,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n >= 0) {
        *res = (int32_t)n;
        return 1;
    }
    if ((errno == EAGAIN || errno == EINTR) && slots_find(&p->cancelling, req) < 0) {
        struct io_uring_sqe *sqe = get_sqe(p);
        if (sqe) {
            prep(p, sqe, req);
            return 0;
        }
    }
    *res = errno == EAGAIN ? IOCP_EAGAIN : iocp__err_from_errno(errno);
    return 1;
}

/*
 * Turn one request CQE into an event.  Returns 1 when ev was filled, 0 when
 * the CQE is absorbed (a recv parked until buffers come back).
 */
static int complete(struct uring_port *p, const struct io_uring_cqe *cqe, struct iocp_event *ev)
{
    struct iocp_req *req = io_uring_cqe_get_data(cqe);
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    int32_t res = cqe->res;
    uint32_t flags = more ? IOCP_EV_MORE : 0;
    void *data = req->buf;
    uint32_t buf_id = 0;

    switch (req->op) {
    case IOCP_OP_ACCEPT:
        res = finish_accept(req, res);
        break;
    case IOCP_OP_SPLICE:
        if (splice_ready(p, req, &res) == 0)
            return 0; /* nothing to move yet: the poll was armed again */
        break;
    case IOCP_OP_RECV:
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            if (res > 0) {
                flags |= IOCP_EV_BUFFER;
                data = buffer_addr(p, bid);
                buf_id = bid;
                p->held++;
                /* What is left of the budget, should the recv park
                 * (ENOBUFS) and be armed again. */
                if ((req->flags & IOCP_REQ_MULTI) && req->len)
                    req->len = (uint32_t)res < req->len ? req->len - (uint32_t)res : 0;
            } else {
                /* EOF or an error can still consume a buffer;
                 * the caller only releases buffers that carry data. */
                give_back(p, bid);
            }
        }
        goto park;
    case IOCP_OP_RECVMSG:
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            struct io_uring_recvmsg_out *o =
                res >= 0 ? io_uring_recvmsg_validate(msg_addr(p, bid), res, &p->mshot) : NULL;
            if (o) {
                struct iocp_msg *m = &p->msgs[bid];
                uint32_t cap = req->len && req->len < IOCP_MSG_MAX ? req->len : IOCP_MSG_MAX;
                uint32_t len = io_uring_recvmsg_payload_length(o, res, &p->mshot);
                m->payload = io_uring_recvmsg_payload(o, &p->mshot);
                m->from = io_uring_recvmsg_name(o);
                m->fromlen = o->namelen < p->mshot.msg_namelen ? o->namelen : p->mshot.msg_namelen;
                m->flags = (o->flags & MSG_TRUNC) ? IOCP_MSG_TRUNC : 0;
                if (len > cap) {
                    len = cap;
                    m->flags |= IOCP_MSG_TRUNC;
                }
                m->len = len;
                res = (int32_t)len;
                flags |= IOCP_EV_BUFFER;
                data = m;
                buf_id = bid | MSG_ID_BIT;
                p->msg_held++;
            } else {
                if (res >= 0)
                    res = IOCP_EPROTO; /* shorter than its own header: never seen */
                give_back_msg(p, bid);
            }
        }
    park:
        /* Out of buffers: the recv waits here, still in flight, until
         * buffers come back, so the caller never sees ENOBUFS; only a
         * failure to grow the parked list lets it through, as an error
         * the caller can act on rather than a recv lost in silence. */
        if (res == IOCP_ENOBUFS && !more && (req->flags & IOCP_REQ_PROVIDED) &&
            slots_find(&p->cancelling, req) < 0 && slots_push(&p->parked, req) == 0)
            return 0;
        break;
    default:
        break;
    }

    if (!more) {
        req->in_flight = false;
        /* A cancelled request's result is ECANCELED whatever stopped it:
         * an interrupted blocking read says EINTR, a starved recv ENOBUFS. */
        if (p->cancelling.n && slots_remove(&p->cancelling, req) &&
            (res == IOCP_EINTR || res == IOCP_ENOBUFS))
            res = IOCP_ECANCELED;
    }
    *ev = (struct iocp_event){
        .req = req, .result = res, .flags = flags, .data = data, .buf_id = buf_id};
    return 1;
}

/*
 * True when events[0..n) already holds a completion of the multishot accept
 * that user_data names.  The accepted socket travels in the request, not in
 * the event, so a second accept in the same batch would overwrite the first
 * before the caller has seen it: such a CQE waits for the next wait().
 */
static bool accept_in_batch(uint64_t user_data, const struct iocp_event *events, int n)
{
    const struct iocp_req *req = (const struct iocp_req *)(uintptr_t)user_data;
    if (req->op != IOCP_OP_ACCEPT || !(req->flags & IOCP_REQ_MULTI))
        return false;
    for (int i = 0; i < n; i++)
        if (events[i].req == req)
            return true;
    return false;
}

/* Reap CQEs into up to max events; internal CQEs need no room. */
static int reap(struct uring_port *p, struct iocp_event *events, int max)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int n = 0;

    io_uring_for_each_cqe(&p->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        if (n == max)
            break;
        if (ud == CLOSE_UD) {
            /* A close that failed: the descriptor is gone either way
             * (Linux frees it even on EINTR), and nobody waits for it. */
        } else if (ud == (uint64_t)(uintptr_t)&p->postq) {
            p->packets_ready = true;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                p->poll_armed = false;
        } else if (ud & CANCEL_BIT) {
            /* ENOENT: the target had already left the kernel, and its
             * last CQE came before this one; a cancel that outlived it
             * must not turn a later use of the request into ECANCELED. */
            if (cqe->res == -ENOENT)
                slots_remove(&p->cancelling,
                             (struct iocp_req *)(uintptr_t)(ud & ~(uint64_t)CANCEL_BIT));
        } else if (ud & BATCH_BIT) {
            n += batch_part(p, (struct send_batch *)(uintptr_t)(ud & ~(uint64_t)BATCH_BIT),
                            cqe->res, &events[n]);
        } else if (accept_in_batch(ud, events, n)) {
            break;
        } else {
            n += complete(p, cqe, &events[n]);
        }
        seen++;
    }
    io_uring_cq_advance(&p->ring, seen);
    return n;
}

/* Hand out posted packets as events with req NULL. */
static int take_packets(struct uring_port *p, struct iocp_event *events, int max)
{
    struct iocp_packet pk[DRAIN_CHUNK];
    int n = 0;

    if (!p->packets_ready)
        return 0;
    while (n < max) {
        int want = max - n < DRAIN_CHUNK ? max - n : DRAIN_CHUNK;
        int got = iocp__postq_drain(&p->postq, pk, want);
        for (int i = 0; i < got; i++)
            events[n++] = (struct iocp_event){.code = pk[i].code, .arg = pk[i].arg};
        if (got < want)
            break;
    }
    /* A drain that filled the batch consumed the wake-up too: no new CQE
     * will come for what is left, so remember it. */
    p->packets_ready = n == max && iocp__postq_pending(&p->postq);
    return n;
}

/* Parked recvs whose cancel was asked for complete here. */
static int take_cancelled(struct uring_port *p, struct iocp_event *events, int max)
{
    int n = 0;
    unsigned i = 0;
    while (i < p->parked.n && n < max) {
        if (!p->parked.v[i].cancelled) {
            i++;
            continue;
        }
        struct iocp_req *req = p->parked.v[i].req;
        slots_remove_at(&p->parked, i);
        req->in_flight = false;
        events[n++] = (struct iocp_event){.req = req, .result = IOCP_ECANCELED, .data = req->buf};
    }
    return n;
}

static int uring_wait(struct iocp_port *port, struct iocp_event *events, int max, int timeout_ms)
{
    struct uring_port *p = to_uring(port);
    uint64_t deadline = timeout_ms > 0 ? iocp__now_ms() + (uint64_t)timeout_ms : 0;

    assert(events && max > 0);
    int rc = enable(p);
    if (rc < 0)
        return rc;

    for (;;) {
        if (!p->poll_armed)
            arm_poll(p);
        /* Buffers went back to the kernel since the recvs parked
         * (released, or returned by an EOF). */
        if (has_live_parked(p))
            rearm_parked(p);

        int n = take_cancelled(p, events, max);
        n += take_packets(p, events + n, max - n);

        /*
         * Block only with nothing in hand.  Otherwise still enter the
         * kernel once: that submits the batch and, on a DEFER_TASKRUN
         * ring, runs the completion work nothing else would run.
         */
        if (n == 0 && timeout_ms != 0 && io_uring_cq_ready(&p->ring) == 0) {
            struct __kernel_timespec ts, *tsp = NULL;
            struct io_uring_cqe *cqe;
            if (timeout_ms > 0) {
                uint64_t now = iocp__now_ms();
                uint64_t left = deadline > now ? deadline - now : 0;
                ts.tv_sec = (long long)(left / 1000);
                ts.tv_nsec = (long long)(left % 1000) * 1000000;
                tsp = &ts;
            }
            rc = io_uring_submit_and_wait_timeout(&p->ring, &cqe, 1, tsp, NULL);
        } else {
            rc = io_uring_submit_and_get_events(&p->ring);
        }

        n += reap(p, events + n, max - n);
        n += take_packets(p, events + n, max - n);
        if (n > 0)
            return n;
        /*
         * Nothing for the caller.  A timeout or a signal ends the wait;
         * EAGAIN and EBUSY (no memory for the submission, CQ overflow)
         * pass once the CQ is reaped; other errors are the caller's.
         * Otherwise the wake-up was only for the port itself (a cancel's
         * own CQE, a post already handed out), so wait again.
         */
        if (rc == -ETIME || rc == -EINTR)
            return 0;
        if (rc < 0 && rc != -EAGAIN && rc != -EBUSY)
            return rc;
        if (timeout_ms == 0 || (timeout_ms > 0 && iocp__now_ms() >= deadline))
            return 0;
    }
}

static void uring_release_buffer(struct iocp_port *port, uint32_t buf_id)
{
    struct uring_port *p = to_uring(port);

    if (buf_id & MSG_ID_BIT) {
        buf_id &= ~MSG_ID_BIT;
        assert(buf_id < MSG_BUFFER_COUNT && p->msg_held > 0);
        give_back_msg(p, buf_id);
        p->msg_held--;
        if (has_live_parked(p))
            rearm_parked(p);
        return;
    }
    assert(buf_id < p->buf_count && p->held > 0);
    give_back(p, buf_id);
    p->held--;
    if (has_live_parked(p))
        rearm_parked(p);
}

/*
 * The caller may keep a stream buffer while no more than half the ring is
 * out: kept buffers come back only when their sends complete, and the other
 * half keeps every connection's receive supplied, so a multishot recv does
 * not park for want of a buffer because replies are in flight.
 */
static bool uring_keep_buffer(struct iocp_port *port, uint32_t buf_id)
{
    const struct uring_port *p = to_uring(port);
    return !(buf_id & MSG_ID_BIT) && p->held * 2 <= p->buf_count;
}

/*
 * Unregistering may fail when another thread than the ring's single issuer
 * closes the port; closing the ring releases the registration then, and the
 * kernel's pin on the ring memory keeps the unmap below safe.
 */
static void uring_close(struct iocp_port *port)
{
    struct uring_port *p = to_uring(port);

    close_unsubmitted(p);
    io_uring_unregister_buf_ring(&p->ring, BUFFER_GROUP);
    if (p->mbr)
        io_uring_unregister_buf_ring(&p->ring, MSG_GROUP);
    io_uring_queue_exit(&p->ring);
    munmap(p->bufs, p->bufs_bytes);
    munmap(p->br, p->br_bytes);
    if (p->mbr) {
        munmap(p->mbufs, p->mbufs_bytes);
        munmap(p->mbr, p->mbr_bytes);
    }
    while (p->batches) {
        struct send_batch *b = p->batches;
        p->batches = b->next;
        free(b);
    }
    free(p->spare);
    iocp__postq_fini(&p->postq);
    free(p->parked.v);
    free(p->cancelling.v);
    free(p);
}

const struct iocp_port_ops iocp__port_uring_ops = {
    .name = "uring",
    .shared = false,
    .splice = true,
    .single_accepts = true,
    .open = uring_open,
    .bind = uring_bind,
    .unbind = uring_unbind,
    .recycle = uring_recycle,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .post = uring_post,
    .wait = uring_wait,
    .release_buffer = uring_release_buffer,
    .close = uring_close,
    .keep_buffer = uring_keep_buffer,
};
