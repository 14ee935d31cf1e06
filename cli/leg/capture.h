/* SPDX-License-Identifier: MIT */
/*
 * What passes on the connections, written down: -x FILE (a hex dump of
 * each direction: connection ID, direction, offset, hex and ASCII) and
 * --pcap FILE (a pcapng file in which every connection is a TCP stream
 * with its real addresses and ports: a synthetic handshake, the payload in
 * segments whose sequence numbers advance with it, and FINs at the end, so
 * that Wireshark and tshark read it as a capture).  For listen, connect and
 * relay: every connection leg (leg.h) is captured, the relay's two legs as
 * two streams.
 *
 * The captured bytes are the plaintext the tool handles: with --key, what
 * went through the channel, decrypted.  A leg copies them into a record
 * sink (record_sink.h) and the sink's thread writes the file, so capturing
 * costs the connections a copy and never a wait: when the file falls
 * behind, records are dropped and counted (stats: capture_dropped; the
 * stream then shows a gap where the segments are missing).  Spliced data
 * never reaches the tool: with capturing on, the relay does not splice.
 */
#ifndef IOCPTOOL_CAPTURE_H
#define IOCPTOOL_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "iocp.h"

/* The getopt codes of --pcap and --hex-dump.  The relay also takes -x
 * for --hex-dump, as ncat does; connect's -x is OpenBSD netcat's proxy
 * address, so listen and connect (which share their options) have only
 * --hex-dump. */
#define CAPTURE_OPT_PCAP 0x380
#define CAPTURE_OPT_HEX  0x381

#define CAPTURE_LONG_OPTIONS                                                                       \
    {"hex-dump", required_argument, NULL, 'x'}, { "pcap", required_argument, NULL, CAPTURE_OPT_PCAP }

#define CAPTURE_HELP                                                                               \
    "  -x, --hex-dump FILE    write a hex dump of what each connection sends and\n"              \
    "                         receives to FILE (-: stdout)\n"                                     \
    "      --pcap FILE        write each connection as a TCP stream to a pcapng FILE\n"

/* listen and connect: long options only. */
#define CAPTURE_BRIDGE_LONG_OPTIONS                                                                \
    {"hex-dump", required_argument, NULL, CAPTURE_OPT_HEX},                                        \
    {                                                                                              \
        "pcap", required_argument, NULL, CAPTURE_OPT_PCAP                                          \
    }
#define CAPTURE_BRIDGE_HELP                                                                        \
    "      --hex-dump FILE    write a hex dump of what the connection sends and\n"               \
    "                         receives to FILE (-: stdout)\n"                                     \
    "      --pcap FILE        write the connection as a TCP stream to a pcapng FILE\n"

/* 'x', CAPTURE_OPT_HEX or CAPTURE_OPT_PCAP with its file: false once
 * said why. */
bool capture_option(const char *cmd, int opt, const char *arg);

/* Whether anything is captured (the relay then copies every byte). */
bool capture_on(void);

/* Open the files asked for: 0, or -1 once said why. */
int capture_start(const char *cmd);

/* The engine has stopped: write what is left and close the files. */
void capture_finish(void);

struct capture_conn;

/*
 * capture_conn_open(c, peer_opened):
 * A connection (on its worker, once open): NULL when nothing is captured
 * (or no memory).  peer_opened: the peer connected to us (accepted).
 */
struct capture_conn *capture_conn_open(struct iocp_conn *c, bool peer_opened);

/* Bytes received from the peer / queued for it. */
void capture_in(struct capture_conn *cc, const void *data, size_t len);
void capture_out(struct capture_conn *cc, const void *data, size_t len);

/* The connection closed: its end, and cc is freed.  NULL does nothing. */
void capture_conn_close(struct capture_conn *cc);

#endif /* IOCPTOOL_CAPTURE_H */
