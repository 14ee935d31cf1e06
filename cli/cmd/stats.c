/* SPDX-License-Identifier: MIT */
/*
 * iocptool stats: read the live counters of a running iocptool server from
 * its stats endpoint (stats_endpoint.h describes the protocol; the endpoint
 * formats every report, so this side only asks, checks and prints).
 *
 * Which server: a PID, a socket path or tcp:[HOST:]PORT on the command
 * line (on Windows also the path of a token file); without one, the
 * per-user directory is scanned.  An endpoint whose process is gone
 * (nobody accepts on it and the PID no longer exists) is stale and
 * removed; one live instance is queried, several are listed.  The system's
 * part (processes, interrupts, the terminal) is in stats_sys.h.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "diag.h"
#include "json.h"
#include "opts.h"
#include "stats_endpoint.h"
#include "stats_sys.h"

#define STATS_QUERY_MS   10000 /* the whole exchange with the endpoint */
#define STATS_MAX_ANSWER (256u << 20)

/*
 * Ask the endpoint and collect the whole answer in out.  Returns 0, or -1
 * after printing why (nothing when an interrupt ended the wait).  An
 * "error: ..." answer is an error too.
 */
static int query(const char *endpoint, const char *request, struct json_buf *out)
{
    char err[512];
    if (stats_endpoint_ask(endpoint, request, out, STATS_MAX_ANSWER, STATS_QUERY_MS, err,
                           sizeof err) < 0) {
        if (!stats_sys_interrupted())
            diag_error("stats: %s", err);
        return -1;
    }
    /* Only a connection listing may be empty. */
    if (out->len == 0 && strncmp(request, "clients", 7) != 0) {
        diag_error("stats: %s: empty answer", endpoint);
        return -1;
    }
    if (out->len >= 7 && !memcmp(out->data, "error: ", 7)) {
        size_t l = out->len;
        while (l && (out->data[l - 1] == '\n' || out->data[l - 1] == '\r'))
            l--;
        diag_error("stats: %s: %.*s", endpoint, (int)(l - 7), out->data + 7);
        return -1;
    }
    return 0;
}

/* ---- finding the running instances ---- */

struct instance {
    long pid;
    char path[512];
};

/*
 * Scan the per-user directory for default endpoints (stats_endpoint_file)
 * that answer a connect.
 * connect.  Fills up to max entries; returns how many were found (possibly
 * more than max), or -1 after printing why.
 */
static int scan(struct instance *found, int max, char *dir, size_t dirlen)
{
    const char *why;
    if (stats_endpoint_dir(dir, dirlen, false, &why) < 0) {
        if (errno == ENOENT)
            return 0;
        diag_error("stats: %s: %s", dir, why);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        diag_error("stats: %s: %s", dir, strerror(errno));
        return -1;
    }
    int count = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        long pid;
        if (!stats_endpoint_file(ent->d_name, &pid))
            continue;
        char path[512];
        int plen = snprintf(path, sizeof path, "%s" STATS_DIR_SEP "%s", dir, ent->d_name);
        if (plen < 0 || (size_t)plen >= sizeof((struct instance *)0)->path)
            continue;
        if (!stats_endpoint_probe(path)) {
            /* Nobody accepts there.  If its process is gone too, the file
             * was left by a crash or a kill: drop it.  (A live process may
             * be between bind and listen: leave its endpoint alone.) */
            if (stats_sys_process_gone(pid)) {
                diag_info(1, "stats: removing stale endpoint %s", path);
                remove(path);
            }
            continue;
        }
        if (count < max) {
            found[count].pid = pid;
            memcpy(found[count].path, path, sizeof path);
        }
        count++;
    }
    closedir(d);
    return count;
}

static int list_instances(const struct instance *in, int n, bool json)
{
    struct json_buf b = JSON_BUF_INIT;
    if (json)
        json_printf(&b, "{\"instances\":[");
    for (int i = 0; i < n; i++) {
        char cmd[512];
        stats_sys_command_of(in[i].pid, cmd, sizeof cmd);
        if (json) {
            json_printf(&b, "%s{\"pid\":%ld", i ? "," : "", in[i].pid);
            json_key(&b, "endpoint", false);
            json_str(&b, in[i].path);
            json_key(&b, "command", false);
            json_str(&b, cmd);
            json_printf(&b, "}");
        } else {
            json_printf(&b, "%ld %s %s\n", in[i].pid, in[i].path, cmd);
        }
    }
    if (json)
        json_printf(&b, "]}\n");
    fwrite(b.data, 1, b.len, stdout);
    json_buf_free(&b);
    return EXIT_OK;
}

/* ---- the command ---- */

enum { OPT_PROMETHEUS = 256, OPT_CLIENTS, OPT_WATCH };

const struct option stats_options[] = {
    {"json", no_argument, NULL, 'j'},
    {"prometheus", no_argument, NULL, OPT_PROMETHEUS},
    {"clients", no_argument, NULL, OPT_CLIENTS},
    {"watch", required_argument, NULL, OPT_WATCH},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void stats_usage(FILE *out)
{
    fprintf(out, "usage: iocptool stats [options] [PID | PATH | tcp:[HOST:]PORT]\n"
                 "\n"
                 "Show the live counters of a running iocptool server (listen, echo, relay)\n"
                 "through its stats endpoint.  Without an argument: the one running instance\n"
                 "of this user, or the list of them (PID, endpoint, command) if several.\n"
                 "\n"
                 "  -j, --json             one JSON object\n"
                 "      --prometheus       the Prometheus text exposition format\n"
                 "      --clients          the connections, one a line:\n"
                 "                         ID PEER AGE_S IDLE_S BYTES_IN BYTES_OUT\n"
                 "                         (a JSON array with --json)\n"
                 "      --watch S          refresh every S seconds until interrupted\n"
                 "  -v, --verbose          the engine's internals in the table too (registry,\n"
                 "                         pending accepts, pool, workers); say which endpoint\n"
                 "                         is asked\n"
                 "  -h, --help             this help\n"
                 "\n"
                 "Rates cover the time since the endpoint's previous sample (taken at most\n"
                 "once a second by a table or JSON request), or since start the first time.\n");
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int cmd_stats(int argc, char **argv)
{
    bool json = false, prometheus = false, clients = false;
    unsigned watch_ms = 0;
    bool watch = false;
    int opt;
    struct opt_parser op;
    opt_init(&op, "stats", argc, argv, "jvh", stats_options);
    while ((opt = opt_next(&op)) != -1) {
        switch (opt) {
        case 'j':
            json = true;
            break;
        case OPT_PROMETHEUS:
            prometheus = true;
            break;
        case OPT_CLIENTS:
            clients = true;
            break;
        case OPT_WATCH:
            if (!opt_seconds("stats", "--watch", optarg, &watch_ms))
                return EXIT_USAGE;
            if (watch_ms < 100) {
                diag_error("stats: --watch %s: too small (at least 0.1 seconds)", optarg);
                return EXIT_USAGE;
            }
            watch = true;
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            stats_usage(stdout);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (prometheus && json) {
        diag_error("stats: --json and --prometheus exclude each other");
        return EXIT_USAGE;
    }
    if (prometheus && clients) {
        diag_error("stats: --clients and --prometheus exclude each other");
        return EXIT_USAGE;
    }
    if (argc - optind > 1) {
        diag_error("stats: expected at most one endpoint");
        diag_try_help("stats");
        return EXIT_USAGE;
    }

    char endpoint[512];
    char dir[256];
    const char *why;
    if (argc - optind == 1 && all_digits(argv[optind])) {
        long long pid;
        if (!opt_number("stats", "pid", argv[optind], 1, 0x7fffffff, &pid))
            return EXIT_USAGE;
        if (stats_endpoint_dir(dir, sizeof dir, false, &why) < 0) {
            diag_error("stats: %s: %s", dir, why);
            return EXIT_RUNTIME;
        }
        stats_endpoint_of_pid(dir, (long)pid, endpoint, sizeof endpoint);
    } else if (argc - optind == 1) {
        /* unix:PATH is PATH, as everywhere an address is taken. */
        const char *where = argv[optind];
        snprintf(endpoint, sizeof endpoint, "%s", where + (strncmp(where, "unix:", 5) ? 0 : 5));
    } else {
        struct instance found[64];
        int n = scan(found, 64, dir, sizeof dir);
        if (n < 0)
            return EXIT_RUNTIME;
        if (n == 0) {
            diag_error("stats: no running iocptool server found (looked in %s)", dir);
            return EXIT_RUNTIME;
        }
        if (n > 1) {
            diag_error("stats: %d servers running: name one by its PID", n);
            return list_instances(found, n < 64 ? n : 64, json);
        }
        snprintf(endpoint, sizeof endpoint, "%s", found[0].path);
    }
    diag_info(1, "stats: asking %s", endpoint);

    const char *request = prometheus           ? "prometheus"
                          : clients            ? (json ? "clients-json" : "clients")
                          : json               ? "json"
                          : diag_verbosity > 0 ? "stats-verbose"
                                               : "stats";
    bool tty = stats_sys_stdout_terminal();
    bool clear = watch && stats_sys_stdout_ansi();
    /* Interrupting a watch is how it ends: exit 0, not by the signal. */
    if (watch)
        stats_sys_catch_interrupts();
    for (unsigned round = 0;; round++) {
        struct json_buf b = JSON_BUF_INIT;
        if (query(endpoint, request, &b) < 0) {
            json_buf_free(&b);
            return stats_sys_interrupted() ? EXIT_OK : EXIT_RUNTIME;
        }
        if (clear)
            fputs("\033[H\033[2J", stdout); /* home, clear: like top */
        else if (watch && round > 0 && !json)
            fputs("\n", stdout);
        if (clients && !json && tty)
            printf("%-20s %-47s %10s %10s %12s %12s\n", "ID", "PEER", "AGE_S", "IDLE_S", "BYTES_IN",
                   "BYTES_OUT");
        fwrite(b.data, 1, b.len, stdout);
        json_buf_free(&b);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            diag_error("stats: stdout: %s", strerror(errno));
            return EXIT_RUNTIME;
        }
        if (!watch)
            return EXIT_OK;
        stats_sys_sleep(watch_ms);
        if (stats_sys_interrupted())
            return EXIT_OK;
    }
}
