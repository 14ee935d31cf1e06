/* SPDX-License-Identifier: MIT */
/*
 * Standard input and output handed to the engine as streams (pipe.h), with
 * what each platform needs around that (stdfd_posix.c, stdfd_win.c): a
 * handle of the stream's own, what to put back at the end, and how to let
 * go of stdout so that the program reading it sees EOF when its stream
 * closes.
 */
#ifndef IOCPTOOL_STDFD_H
#define IOCPTOOL_STDFD_H

#include <stdbool.h>

#include "iocp.h"

/*
 * stdfd_reserve():
 * The first thing main() does.  On POSIX, each of descriptors 0-2 that is
 * closed is opened on /dev/null, so that no descriptor the tool opens later
 * (the engine's own, a socket) takes a standard number and is then read or
 * written as stdin or stdout: a closed stdin reads as empty, a closed
 * stdout or stderr discards what is written.  On Windows there is nothing
 * to reserve (handles are not numbered that way); an invalid standard
 * handle is taken by stdfd_take() as an empty input or a discarded output.
 */
void stdfd_reserve(void);

/* fd 0 or 1 as we found it. */
struct stdfd {
    int flags;     /* POSIX: file status flags at start; -1 if the fd was closed */
    bool released; /* stdout was let go of after its stream closed */
};

/*
 * stdfd_take(fd, s, handle):
 * A handle of its own on fd (0 or 1) for a stream, which owns and closes it.
 * 0; 1 when fd is not open (nothing to bridge); or a negative IOCP_E* code.
 */
int stdfd_take(int fd, struct stdfd *s, iocp_socket_t *handle);

/* Close a handle from stdfd_take() that no stream took. */
void stdfd_close(iocp_socket_t handle);

/* Put fd back as it was found (a stream may change its mode).  Harmless
 * when repeated. */
void stdfd_restore(int fd, const struct stdfd *s);

/* stdout's stream has closed: put it back, then drop the process's own
 * reference too (stdout then goes nowhere), so its reader sees EOF. */
void stdfd_release_stdout(struct stdfd *s);

/* True when fd (0, 1 or 2) is a terminal or console. */
bool stdfd_isatty(int fd);

#endif /* IOCPTOOL_STDFD_H */
