/* SPDX-License-Identifier: MIT */
/*
 * The stats endpoint: every server subcommand (listen, echo, relay) answers
 * `iocptool stats` on a small socket of its own, served by a dedicated
 * thread that never touches the engine's workers (it only calls
 * iocp_engine_stats() and iocp_engine_foreach_conn(), which are safe from
 * any thread).
 *
 * Where (POSIX).  By default a Unix-domain socket, mode 0600, named
 * <pid>.sock in a directory only the user can reach:
 * $XDG_RUNTIME_DIR/iocptool/ when XDG_RUNTIME_DIR is set (an absolute
 * path), else /tmp/iocptool-<uid>/.  The directory is created 0700 and must
 * be a real directory (not a symbolic link) owned by the user with no group
 * or other permissions, or the endpoint is not started.  `--stats PATH`
 * puts the socket at PATH (same 0600 mode); `--stats tcp:[HOST:]PORT`
 * listens on TCP instead, 127.0.0.1 unless HOST says otherwise (any local
 * user can read a TCP endpoint: it is opt-in for that reason).  A
 * Unix-domain client whose uid is neither ours nor root's is refused on
 * accept as well.
 *
 * Where (Windows).  The per-user directory is %LOCALAPPDATA%\iocptool,
 * created with a protected DACL that grants the user, and nobody else,
 * full access, inherited by everything made in it (set again at each
 * start, so a directory opened up since is closed again).  The endpoint is
 * a Unix-domain socket <pid>.sock there (Windows 10 1803 and later), its
 * file given the same DACL before it listens.  Where AF_UNIX is missing
 * (Wine has none) or fails, the endpoint is loopback TCP on an ephemeral
 * port guarded by a token: the file <pid>.tcp, with the same DACL, holds
 * "PORT TOKEN\n", TOKEN being 32 random bytes in hex; a client sends the
 * token line first, then its request, and a wrong or missing token gets
 * "error: ..." and a close.  The token file is opened delete-on-close, so
 * it goes away even when the process is killed.  `--stats PATH` and
 * `--stats tcp:[HOST:]PORT` are as on POSIX (no token on explicit TCP).
 *
 * Protocol.  The client sends one request line, receives the answer, and
 * the endpoint closes the connection:
 *
 *     stats         the report as a table (what `iocptool stats` shows):
 *                   connections, rates, traffic, errors
 *     stats-verbose the same and the engine's internals (registry, hash,
 *                   pending accepts, pool, workers): `iocptool stats -v`
 *     json          the same as one JSON object
 *     prometheus    the Prometheus text exposition format (version 0.0.4)
 *     clients       one line per online connection:
 *                   ID PEER AGE_S IDLE_S BYTES_IN BYTES_OUT
 *     clients-json  the same as a JSON array
 *
 * Anything else, a line over 128 bytes, or no line within 5 seconds gets
 * one line "error: <why>" and a close; it never affects the server.
 *
 * Clients at once.  At most 32.  With every slot taken, a new client takes
 * the slot of one whose answer is out, else of the oldest that has sent no
 * whole request for a second (it gets "error: busy ..."); a client being
 * answered keeps its slot, and new ones wait in the backlog meanwhile.  So
 * idle or half-sent connections cannot keep a query out, and a storm of
 * queries is answered in turn.  When accepting fails for want of
 * descriptors, the endpoint pauses its listening socket for 50 ms at a
 * time (as the engine's acceptors do) instead of spinning on it, and
 * answers again once descriptors are free.
 *
 * Rates.  Byte, accept and completion rates are computed by the endpoint
 * against the previous sample: a `stats` or `json` request takes a new
 * sample when the last one is at least one second old, and the first
 * request compares with the engine's start (its rates are averages since
 * then).  The report says which interval it covers.
 *
 * Using it from a server subcommand:
 *
 *     options:  {"stats", required_argument, NULL, OPT_STATS},
 *               {"no-stats", no_argument, NULL, OPT_NO_STATS}
 *     usage:    STATS_ENDPOINT_HELP in the option list
 *     ready:    if (!no_stats && stats_endpoint_start(e, s, spec) < 0) fail;
 *     at exit:  stats_endpoint_stop() before the server and engine go away
 *               (cli_run_server() does this for the subcommands it runs).
 */
#ifndef IOCPTOOL_STATS_ENDPOINT_H
#define IOCPTOOL_STATS_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "iocp.h"
#include "json.h"

/* The two option lines for a subcommand's --help (26-column layout). */
#define STATS_ENDPOINT_HELP                                                                        \
    "      --stats ADDR       stats endpoint: a socket PATH or tcp:[HOST:]PORT\n"                  \
    "                         (default: a per-user socket named after the pid)\n"                  \
    "      --no-stats         no stats endpoint\n"

/*
 * stats_endpoint_start(e, s, spec):
 * Open the endpoint and start its thread.  e must be running; s (may be
 * NULL) is the server whose address and connection count the report
 * shows.  spec is NULL for the default per-user socket, a path, or
 * "tcp:[HOST:]PORT".  With -v, says where it listens on stderr
 * ("iocptool: stats endpoint unix PATH" or "... tcp ADDR PORT").  Returns
 * 0, or -1 after printing why on stderr (nothing is left open then).  One
 * endpoint per process: a second start fails.  Call from the main thread.
 * On Windows, with -v, a token endpoint is said as "... tcp ADDR PORT
 * token FILE".
 */
int stats_endpoint_start(struct iocp_engine *e, struct iocp_server *s, const char *spec);

/*
 * stats_endpoint_stop():
 * Stop the thread, close every socket and remove the socket file.  Does
 * nothing when no endpoint runs, so it may be called unconditionally.
 * Call from the thread that started it, before e and s are freed.
 */
void stats_endpoint_stop(void);

/* ---- shared with the `stats` subcommand ---- */

/* The separator between the per-user directory and a file in it. */
#ifdef _WIN32
#define STATS_DIR_SEP "\\"
#else
#define STATS_DIR_SEP "/"
#endif

/*
 * stats_endpoint_dir(buf, len, create, why):
 * The per-user directory (without a trailing separator) into buf.  With
 * create, make it if it is missing and (on Windows) restrict it to the
 * user.  POSIX checks that it is a directory, not a symbolic link, owned by
 * the effective user, with no group or other permissions; Windows that it
 * is a directory and not a reparse point (a link or junction).  Returns 0,
 * or -1 with a reason in *why (a static string); errno is ENOENT when the
 * directory does not exist.
 */
int stats_endpoint_dir(char *buf, size_t len, bool create, const char **why);

/*
 * stats_endpoint_file(name, pid):
 * Whether name, a file in the per-user directory, is the default endpoint
 * of a server ("<pid>.sock"; on Windows "<pid>.tcp" as well), and whose.
 */
bool stats_endpoint_file(const char *name, long *pid);

/*
 * stats_endpoint_of_pid(dir, pid, buf, len):
 * The default endpoint of process pid in the per-user directory dir (on
 * Windows the socket when there is one, else the token file).
 */
void stats_endpoint_of_pid(const char *dir, long pid, char *buf, size_t len);

/*
 * stats_endpoint_probe(spec):
 * Whether something accepts connections at spec (a path, a token file or
 * tcp:[HOST:]PORT).  Nothing is sent.
 */
bool stats_endpoint_probe(const char *spec);

/*
 * stats_endpoint_ask(spec, request, out, max, timeout_ms, err, errlen):
 * Connect to spec, send the request line (after the token, for a token
 * file) and collect the whole answer, up to the endpoint's close, in out.
 * Returns 0, or -1 with the reason in err ("SPEC: why"): no connection, no
 * complete answer within timeout_ms, an answer over max bytes, or a signal
 * (POSIX) that interrupted the wait.
 */
int stats_endpoint_ask(const char *spec, const char *request, struct json_buf *out, size_t max,
                       unsigned timeout_ms, char *err, size_t errlen);

#endif /* IOCPTOOL_STATS_ENDPOINT_H */
