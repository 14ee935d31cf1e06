/* SPDX-License-Identifier: MIT */
/*
 * --pcap FILE: pcapng (a Section Header, one Interface Description of link
 * type RAW, i.e. packets that start with their IP header, and an Enhanced
 * Packet Block per packet).  Each connection is a TCP stream between its
 * real addresses and ports:
 *
 *   open:  SYN, SYN-ACK, ACK, from whichever side opened it;
 *   data:  one PSH-ACK segment per record, its sequence number the
 *          direction's initial one plus the bytes before it, its
 *          acknowledgement what the other direction had sent so far;
 *   close: FIN-ACK each way and the last ACK.
 *
 * The worker puts the record (addresses, sequence numbers, time, payload)
 * in the sink; the headers and checksums are made on the sink's thread.
 * A dropped record leaves a gap in the sequence numbers, which readers
 * show as segments not captured.
 */
#include <stdlib.h>
#include <string.h>

#include "capture_internal.h"

#define PCAP_BUFFER (8u << 20)

enum { PKT_OPEN, PKT_DATA, PKT_CLOSE };

struct pcap_rec {
    uint64_t ts_us;
    struct capture_addr peer, local;
    uint32_t seq_peer, seq_local; /* the next sequence number each way */
    uint8_t kind;
    bool from_peer, peer_opened;
};

/* TCP flags. */
#define FIN 0x01
#define SYN 0x02
#define PSH 0x08
#define ACK 0x10

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* pcapng's own fields are in the writer's byte order (the Section Header's
 * magic tells readers which). */
static void host32(struct record_out *out, uint32_t v)
{
    record_out_put(out, &v, 4);
}

/* The one's complement sum of len bytes, added to sum. */
static uint32_t csum_add(uint32_t sum, const unsigned char *p, size_t len)
{
    for (; len > 1; p += 2, len -= 2)
        sum += (uint32_t)(p[0] << 8 | p[1]);
    if (len)
        sum += (uint32_t)(p[0] << 8);
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* One packet from `from` to `to` as an Enhanced Packet Block. */
static void packet(struct record_out *out, uint64_t ts_us, const struct capture_addr *from,
                   const struct capture_addr *to, uint32_t seq, uint32_t ack, uint8_t flags,
                   const unsigned char *payload, size_t len)
{
    unsigned char hdr[60];
    size_t iplen = from->family == 6 ? 40 : 20;
    unsigned char *ip = hdr, *tcp = hdr + iplen;
    size_t total = iplen + 20 + len;
    memset(hdr, 0, sizeof hdr);
    if (from->family == 6) {
        ip[0] = 0x60;
        put16(ip + 4, (uint16_t)(20 + len));
        ip[6] = 6; /* TCP */
        ip[7] = 64;
        memcpy(ip + 8, from->addr, 16);
        memcpy(ip + 24, to->addr, 16);
    } else {
        static uint16_t ident; /* the sink's thread only */
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t)total);
        put16(ip + 4, ident++);
        put16(ip + 6, 0x4000); /* don't fragment */
        ip[8] = 64;
        ip[9] = 6;
        memcpy(ip + 12, from->addr, 4);
        memcpy(ip + 16, to->addr, 4);
        put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    }
    put16(tcp, from->port);
    put16(tcp + 2, to->port);
    put32(tcp + 4, seq);
    put32(tcp + 8, (flags & ACK) ? ack : 0);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put16(tcp + 14, 65535);
    /* The checksum over the pseudo-header, the header and the payload. */
    unsigned char pseudo[40];
    size_t plen;
    size_t alen = from->family == 6 ? 16 : 4;
    memcpy(pseudo, from->addr, alen);
    memcpy(pseudo + alen, to->addr, alen);
    if (from->family == 6) {
        put32(pseudo + 32, (uint32_t)(20 + len));
        pseudo[36] = pseudo[37] = pseudo[38] = 0;
        pseudo[39] = 6;
        plen = 40;
    } else {
        pseudo[8] = 0;
        pseudo[9] = 6;
        put16(pseudo + 10, (uint16_t)(20 + len));
        plen = 12;
    }
    uint32_t sum = csum_add(0, pseudo, plen);
    sum = csum_add(sum, tcp, 20);
    sum = csum_add(sum, payload, len);
    put16(tcp + 16, csum_fold(sum));

    size_t pad = (4 - total % 4) % 4;
    uint32_t block = (uint32_t)(28 + total + pad + 4);
    host32(out, 6); /* Enhanced Packet Block */
    host32(out, block);
    host32(out, 0); /* interface 0 */
    host32(out, (uint32_t)(ts_us >> 32));
    host32(out, (uint32_t)ts_us);
    host32(out, (uint32_t)total);
    host32(out, (uint32_t)total);
    record_out_put(out, hdr, iplen + 20);
    if (len)
        record_out_put(out, payload, len);
    static const unsigned char zeros[4];
    record_out_put(out, zeros, pad);
    host32(out, block);
}

static void emit(void *ctx, const unsigned char *rec, size_t len, struct record_out *out)
{
    (void)ctx;
    struct pcap_rec r;
    memcpy(&r, rec, sizeof r);
    const unsigned char *payload = rec + sizeof r;
    size_t n = len - sizeof r;
    const struct capture_addr *p = &r.peer, *l = &r.local;
    switch (r.kind) {
    case PKT_OPEN: {
        /* seq_* are the initial sequence numbers here. */
        const struct capture_addr *a = r.peer_opened ? p : l, *b = r.peer_opened ? l : p;
        uint32_t isn_a = r.peer_opened ? r.seq_peer : r.seq_local;
        uint32_t isn_b = r.peer_opened ? r.seq_local : r.seq_peer;
        packet(out, r.ts_us, a, b, isn_a, 0, SYN, NULL, 0);
        packet(out, r.ts_us, b, a, isn_b, isn_a + 1, SYN | ACK, NULL, 0);
        packet(out, r.ts_us, a, b, isn_a + 1, isn_b + 1, ACK, NULL, 0);
        break;
    }
    case PKT_DATA:
        if (r.from_peer)
            packet(out, r.ts_us, p, l, r.seq_peer, r.seq_local, PSH | ACK, payload, n);
        else
            packet(out, r.ts_us, l, p, r.seq_local, r.seq_peer, PSH | ACK, payload, n);
        break;
    case PKT_CLOSE:
        packet(out, r.ts_us, p, l, r.seq_peer, r.seq_local, FIN | ACK, NULL, 0);
        packet(out, r.ts_us, l, p, r.seq_local, r.seq_peer + 1, FIN | ACK, NULL, 0);
        packet(out, r.ts_us, p, l, r.seq_peer + 1, r.seq_local + 1, ACK, NULL, 0);
        break;
    }
}

struct record_sink *pcap_open(const char *path, stats_counter_t *dropped)
{
    struct record_sink *k = record_sink_open(path, PCAP_BUFFER, emit, NULL, dropped);
    if (!k)
        return NULL;
    struct record_out h = {0};
    /* Section Header Block: byte-order magic, version 1.0, length unknown. */
    host32(&h, 0x0A0D0D0A);
    host32(&h, 28);
    host32(&h, 0x1A2B3C4D);
    uint16_t version[2] = {1, 0};
    record_out_put(&h, version, sizeof version);
    host32(&h, 0xffffffffu);
    host32(&h, 0xffffffffu);
    host32(&h, 28);
    /* Interface Description Block: LINKTYPE_RAW (101), no snap length,
     * microsecond timestamps (the default). */
    host32(&h, 1);
    host32(&h, 20);
    uint16_t link[2] = {101, 0};
    record_out_put(&h, link, sizeof link);
    host32(&h, 0);
    host32(&h, 20);
    if (!h.failed)
        record_sink_header(k, h.buf, h.len);
    free(h.buf);
    return k;
}

static void put_rec(struct record_sink *k, const struct capture_conn *cc, uint8_t kind,
                    bool from_peer, const void *data, size_t len)
{
    struct pcap_rec r;
    memset(&r, 0, sizeof r);
    r.ts_us = capture_now_us();
    r.peer = cc->peer;
    r.local = cc->local;
    r.kind = kind;
    r.from_peer = from_peer;
    r.peer_opened = cc->peer_opened;
    if (kind == PKT_OPEN) {
        r.seq_peer = cc->isn_peer;
        r.seq_local = cc->isn_local;
    } else {
        r.seq_peer = cc->isn_peer + 1 + (uint32_t)cc->in;
        r.seq_local = cc->isn_local + 1 + (uint32_t)cc->out;
    }
    record_sink_put(k, &r, sizeof r, data, len);
}

void pcap_conn(struct record_sink *k, const struct capture_conn *cc, bool open)
{
    put_rec(k, cc, open ? PKT_OPEN : PKT_CLOSE, false, NULL, 0);
}

void pcap_data(struct record_sink *k, const struct capture_conn *cc, bool from_peer,
               const void *data, size_t len)
{
    put_rec(k, cc, PKT_DATA, from_peer, data, len);
}
