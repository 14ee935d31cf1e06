/* SPDX-License-Identifier: MIT */
/*
 * A flag flipped only by compare-and-swap (seed 4').
 *
 * Adding an object to a list it is already in, or removing it from a list it
 * is not in, corrupts the list in ways that show up far from the cause.  The
 * owner therefore decides membership first with a CAS: only the thread that
 * moved the flag from false to true may insert, and only the one that moved
 * it from true to false may remove.  Every other caller gets false and
 * changes nothing.
 */
#ifndef IOCP_CASFLAG_H
#define IOCP_CASFLAG_H

#include <stdbool.h>

#include "iocp/types.h"

struct iocp_casflag {
    iocp_atomic_bool value;
};

static inline void iocp_casflag_init(struct iocp_casflag *flag, bool value)
{
    atomic_init(&flag->value, value);
}

/* Move the flag from false to true; true only for the caller that did it. */
static inline bool iocp_casflag_raise(struct iocp_casflag *flag)
{
    bool expected = false;
    return atomic_compare_exchange_strong_explicit(&flag->value, &expected, true,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* Move the flag from true to false; true only for the caller that did it. */
static inline bool iocp_casflag_lower(struct iocp_casflag *flag)
{
    bool expected = true;
    return atomic_compare_exchange_strong_explicit(&flag->value, &expected, false,
                                                   memory_order_acq_rel, memory_order_acquire);
}

static inline bool iocp_casflag_get(const struct iocp_casflag *flag)
{
    return atomic_load_explicit((iocp_atomic_bool *)&flag->value, memory_order_acquire);
}

#endif /* IOCP_CASFLAG_H */
