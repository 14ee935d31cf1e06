/* SPDX-License-Identifier: MIT */
/*
 * The port arguments of connect -z, TCP and UDP alike.
 */
#ifndef IOCPTOOL_PROBE_PORTS_H
#define IOCPTOOL_PROBE_PORTS_H

#include <stddef.h>

/*
 * probe_ports_slots(args, nargs, slot_size, port_offset, n):
 * Each argument a port, a range or a comma list of either ("80", "20-25",
 * "22,80,443"): an array of *n zeroed slots of slot_size bytes (malloc'd,
 * the caller frees it), one per port, each port once and in the order
 * given, with the port in the uint16_t at port_offset of its slot.  NULL
 * after saying why (a bad port, none at all, no memory).
 */
void *probe_ports_slots(char *const *args, int nargs, size_t slot_size, size_t port_offset,
                        size_t *n);

#endif /* IOCPTOOL_PROBE_PORTS_H */
