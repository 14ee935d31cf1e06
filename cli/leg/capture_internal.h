/* SPDX-License-Identifier: MIT */
/*
 * What capture.c shares with its two writers, hexdump.c and
 * capture_pcap.c: a connection's addresses and counters, and each
 * writer's entry points (called on the connection's worker; they only
 * build records for their sink).
 */
#ifndef IOCPTOOL_CAPTURE_INTERNAL_H
#define IOCPTOOL_CAPTURE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record_sink.h"

/* The most payload in one record, and so in one TCP segment of the
 * capture (an IPv4 packet holds at most 65,535 bytes). */
#define CAPTURE_SEGMENT 32768u

struct capture_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
    uint16_t port;
};

struct capture_conn {
    uint64_t id;
    bool peer_opened;
    struct capture_addr peer, local;
    char peer_text[64], local_text[64];
    uint64_t in, out;            /* bytes each way so far: the dump's offsets */
    uint32_t isn_peer, isn_local; /* the synthetic initial sequence numbers */
};

/* Microseconds since the epoch. */
uint64_t capture_now_us(void);

struct record_sink *hexdump_open(const char *path, stats_counter_t *dropped);
void hexdump_conn(struct record_sink *k, const struct capture_conn *cc, bool open);
void hexdump_data(struct record_sink *k, const struct capture_conn *cc, bool from_peer,
                  const void *data, size_t len);

struct record_sink *pcap_open(const char *path, stats_counter_t *dropped);
void pcap_conn(struct record_sink *k, const struct capture_conn *cc, bool open);
void pcap_data(struct record_sink *k, const struct capture_conn *cc, bool from_peer,
               const void *data, size_t len);

#endif /* IOCPTOOL_CAPTURE_INTERNAL_H */
