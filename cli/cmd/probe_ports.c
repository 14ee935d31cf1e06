/* SPDX-License-Identifier: MIT */
/*
 * probe_ports.h: the port arguments of connect -z.
 */
#include "probe_ports.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "diag.h"

/* Every port of one argument not seen yet, appended to ports. */
static bool add_list(const char *arg, unsigned char *seen, uint16_t *ports, size_t *n)
{
    char *list = strdup(arg);
    if (!list) {
        diag_error("connect: %s", iocp_strerror(IOCP_ENOMEM));
        return false;
    }
    char *save = NULL;
    bool ok = true;
    for (char *tok = strtok_r(list, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        uint16_t lo = 1, hi = 0;
        ok = addr_port_range("connect", tok, &lo, &hi);
        for (unsigned p = lo; ok && p <= hi; p++) {
            if (seen[p / 8] & (1u << (p % 8)))
                continue;
            seen[p / 8] |= (unsigned char)(1u << (p % 8));
            ports[(*n)++] = (uint16_t)p;
        }
    }
    free(list);
    return ok;
}

void *probe_ports_slots(char *const *args, int nargs, size_t slot_size, size_t port_offset,
                        size_t *n)
{
    static unsigned char seen[65536 / 8];
    memset(seen, 0, sizeof seen);
    *n = 0;
    uint16_t *ports = malloc(65535 * sizeof *ports);
    if (!ports) {
        diag_error("connect: %s", iocp_strerror(IOCP_ENOMEM));
        return NULL;
    }
    bool ok = true;
    for (int i = 0; i < nargs && ok; i++)
        ok = add_list(args[i], seen, ports, n);
    if (ok && *n == 0) {
        diag_error("connect: -z: no port to probe");
        ok = false;
    }
    unsigned char *slots = ok ? calloc(*n, slot_size) : NULL;
    if (ok && !slots)
        diag_error("connect: %s", iocp_strerror(IOCP_ENOMEM));
    for (size_t i = 0; slots && i < *n; i++)
        memcpy(slots + i * slot_size + port_offset, &ports[i], sizeof ports[i]);
    free(ports);
    if (!slots)
        *n = 0;
    return slots;
}
