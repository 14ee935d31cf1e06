/* SPDX-License-Identifier: MIT */
/*
 * What a relay says at the default level about the ends it cannot serve:
 * a target that cannot be reached or whose encrypted channel fails, and
 * clients whose encrypted channels fail.  One line when such an end
 * changes state (working, unreachable, channel failing), with the reason,
 * and one when it works again, with what happened meanwhile (failures,
 * clients reset); what is still failing at exit is said with its counts.
 * So a dead target costs a line or two, not one per client; the details
 * per client stay at -v.
 *
 * Any worker may report: the state changes are compare-and-swap, so
 * exactly one worker says each change.
 */
#ifndef IOCPTOOL_RELAY_HEALTH_H
#define IOCPTOOL_RELAY_HEALTH_H

#include <stdatomic.h>

enum health_state {
    HEALTH_OK,          /* working, or not tried yet */
    HEALTH_UNREACHABLE, /* connecting to it fails */
    HEALTH_CHANNEL,     /* its encrypted channel fails */
};

struct relay_health {
    const char *what; /* "target 127.0.0.1:9", "clients" */
    atomic_int state;
    atomic_uint failures; /* since it last worked */
    atomic_uint resets;   /* clients reset since then because of it */
};

/* A failure of this end: said if it was working or failing otherwise. */
void health_failed(struct relay_health *h, enum health_state state, const char *why);

/* This end worked: said if it was failing, with the counts. */
void health_ok(struct relay_health *h);

/* A client was reset because of this end. */
void health_client_reset(struct relay_health *h);

/* At exit: an end still failing is said once more, with its counts. */
void health_final(struct relay_health *h);

#endif /* IOCPTOOL_RELAY_HEALTH_H */
