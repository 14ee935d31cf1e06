/* SPDX-License-Identifier: MIT */
/*
 * connect -z -u: which of these UDP ports answer?
 */
#ifndef IOCPTOOL_UDP_PROBE_H
#define IOCPTOOL_UDP_PROBE_H

#include <stdbool.h>

/* How long a silent port is waited for when -w is not given. */
#define UDP_PROBE_WAIT_MS 1000u

struct udp_probe_config {
    const char *host; /* as the user wrote it: printed in the results */
    int family;       /* enum iocp_family */
    bool numeric;     /* -n */
    const char *source_host;
    unsigned wait_ms; /* per port */
    const char *backend;
    char **ports; /* arguments: "53", "20-25", "53,123" */
    int nports;
};

/*
 * udp_probe_run(cfg):
 * Send an empty datagram to each port and print, in the order the ports
 * were given, "HOST PORT open" (a datagram came back) or "HOST PORT
 * open|filtered" (silence for wait_ms, as nmap says it: nothing tells an
 * open port that ignores the probe from a firewall that drops it); a port
 * that answers ICMP port-unreachable is closed and printed only at -v, on
 * stderr.  Returns 0 if any port is open or open|filtered, 1 if every port
 * is closed (or on a runtime error), 2 on a bad port list.
 */
int udp_probe_run(const struct udp_probe_config *cfg);

#endif /* IOCPTOOL_UDP_PROBE_H */
