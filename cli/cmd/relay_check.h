/* SPDX-License-Identifier: MIT */
/*
 * The relay's active check (--check S): every S seconds, a TCP connect to
 * each target of each listening port, through the engine like any other
 * connection (a library timer on worker 0 starts them; their callbacks
 * run there too).  A target that accepts is in (balance_checked ok), one
 * that refuses or does not answer within S seconds is out.  A target
 * whose check has not ended yet is not checked again meanwhile.
 */
#ifndef IOCPTOOL_RELAY_CHECK_H
#define IOCPTOOL_RELAY_CHECK_H

#include "iocp.h"

#include "relay_ports.h"

struct relay_check;

/* Start checking every period_ms (the engine runs).  0, or -1 after saying
 * why. */
int relay_check_start(struct relay_check **out, struct iocp_engine *e, struct relay_ports *ports,
                      unsigned period_ms);

/* After the engine stopped: the timer and what it held go.  NULL: nothing. */
void relay_check_free(struct relay_check *c);

#endif /* IOCPTOOL_RELAY_CHECK_H */
