/* SPDX-License-Identifier: MIT */
/* capture.h: the options, the files, and each connection's counters. */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture_internal.h"
#include "diag.h"
#include "netcompat.h"
#include "stats_sections.h"

#define CAPTURE_CLOSE_WAIT_MS 5000

static struct {
    const char *hex_path, *pcap_path;
    struct record_sink *hex, *pcap;
    stats_counter_t dropped;
} cap;

bool capture_option(const char *cmd, int opt, const char *arg)
{
    bool hex = opt == 'x' || opt == CAPTURE_OPT_HEX;
    const char **path = hex ? &cap.hex_path : &cap.pcap_path;
    if (*path) {
        diag_error("%s: %s given twice", cmd, hex ? "--hex-dump" : "--pcap");
        return false;
    }
    *path = arg;
    return true;
}

bool capture_on(void)
{
    return cap.hex_path || cap.pcap_path;
}

int capture_start(const char *cmd)
{
    if (!capture_on())
        return 0;
    stats_counter_register("capture_dropped",
                           "Captured records (-x, --pcap) dropped: the file was behind.",
                           &cap.dropped);
    if (cap.hex_path && !(cap.hex = hexdump_open(cap.hex_path, &cap.dropped))) {
        diag_error("%s: -x %s: %s", cmd, cap.hex_path, strerror(errno));
        return -1;
    }
    if (cap.pcap_path && !(cap.pcap = pcap_open(cap.pcap_path, &cap.dropped))) {
        diag_error("%s: --pcap %s: %s", cmd, cap.pcap_path, strerror(errno));
        return -1;
    }
    return 0;
}

void capture_finish(void)
{
    record_sink_close(cap.hex, CAPTURE_CLOSE_WAIT_MS);
    record_sink_close(cap.pcap, CAPTURE_CLOSE_WAIT_MS);
    cap.hex = cap.pcap = NULL;
}

uint64_t capture_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "1.2.3.4:80" or "[v6]:80" (as iocp_conn_peer writes them) into a; an
 * IPv4-mapped IPv6 address becomes IPv4 (a dual-stack listener's IPv4
 * clients).  false when it does not parse. */
static bool parse_addr(const char *text, struct capture_addr *a)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host)
        return false;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    a->port = (uint16_t)atoi(colon + 1);
    memset(a->addr, 0, sizeof a->addr);
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return false;
        host[n - 1] = '\0';
        struct in6_addr in6;
        if (inet_pton(AF_INET6, host + 1, &in6) != 1)
            return false;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(&in6, mapped, sizeof mapped)) {
            a->family = 4;
            memcpy(a->addr, (const uint8_t *)&in6 + 12, 4);
        } else {
            a->family = 6;
            memcpy(a->addr, &in6, 16);
        }
        return true;
    }
    struct in_addr in4;
    if (inet_pton(AF_INET, host, &in4) != 1)
        return false;
    a->family = 4;
    memcpy(a->addr, &in4, 4);
    return true;
}

struct capture_conn *capture_conn_open(struct iocp_conn *c, bool peer_opened)
{
    if (!cap.hex && !cap.pcap)
        return NULL;
    struct capture_conn *cc = calloc(1, sizeof *cc);
    if (!cc)
        return NULL;
    cc->id = iocp_conn_id(c);
    cc->peer_opened = peer_opened;
    iocp_conn_peer(c, cc->peer_text, sizeof cc->peer_text);
    iocp_conn_local(c, cc->local_text, sizeof cc->local_text);
    if (!parse_addr(cc->peer_text, &cc->peer) || !parse_addr(cc->local_text, &cc->local) ||
        cc->peer.family != cc->local.family) {
        /* Not an IP connection (cannot happen on TCP): the dump still
         * works; the capture file shows it between zero addresses. */
        memset(&cc->peer, 0, sizeof cc->peer);
        memset(&cc->local, 0, sizeof cc->local);
        cc->peer.family = cc->local.family = 4;
    }
    /* Sequence numbers that differ from one connection to the next, as
     * real ones do, from the connection's ID. */
    cc->isn_peer = (uint32_t)(cc->id * 2654435761u) ^ 0x1000u;
    cc->isn_local = cc->isn_peer ^ 0x5a5a5a5au;
    if (cap.hex)
        hexdump_conn(cap.hex, cc, true);
    if (cap.pcap)
        pcap_conn(cap.pcap, cc, true);
    return cc;
}

static void data(struct capture_conn *cc, bool from_peer, const void *bytes, size_t len)
{
    if (!cc)
        return;
    /* Records of at most a segment each: a large send neither needs a
     * large record nor loses more than a segment when the file is behind. */
    const unsigned char *p = bytes;
    while (len) {
        size_t n = len < CAPTURE_SEGMENT ? len : CAPTURE_SEGMENT;
        if (cap.hex)
            hexdump_data(cap.hex, cc, from_peer, p, n);
        if (cap.pcap)
            pcap_data(cap.pcap, cc, from_peer, p, n);
        *(from_peer ? &cc->in : &cc->out) += n;
        p += n;
        len -= n;
    }
}

void capture_in(struct capture_conn *cc, const void *bytes, size_t len)
{
    data(cc, true, bytes, len);
}

void capture_out(struct capture_conn *cc, const void *bytes, size_t len)
{
    data(cc, false, bytes, len);
}

void capture_conn_close(struct capture_conn *cc)
{
    if (!cc)
        return;
    if (cap.hex)
        hexdump_conn(cap.hex, cc, false);
    if (cap.pcap)
        pcap_conn(cap.pcap, cc, false);
    free(cc);
}
