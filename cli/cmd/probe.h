/* SPDX-License-Identifier: MIT */
/*
 * connect -z: probe ports, concurrently, through the engine.
 */
#ifndef IOCPTOOL_PROBE_H
#define IOCPTOOL_PROBE_H

#include <stdbool.h>
#include <stdint.h>

struct probe_config {
    const char *host; /* as the user wrote it: printed in the results */
    int family;       /* enum iocp_family */
    bool numeric;     /* -n: host must be a numeric address */
    const char *source_host;
    unsigned timeout_ms; /* per port; 0: the system's */
    const char *backend;
    char **ports; /* arguments: "80", "20-25", "22,80,443" */
    int nports;
};

/*
 * probe_run(cfg):
 * Print "HOST PORT open" on stdout for each open port, in the order the
 * ports were given, and return the exit status: 0 if any port is open, 1
 * if none is (or on a runtime error), 2 on a bad port list.
 */
int probe_run(const struct probe_config *cfg);

#endif /* IOCPTOOL_PROBE_H */
