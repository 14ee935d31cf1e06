/* SPDX-License-Identifier: MIT */
/*
 * The registry of subcommands (cmdtable.h): main() runs them from here and
 * the completion scripts are written from here.
 */
#include <ctype.h>
#include <string.h>

#include "cmds.h"
#include "cmdtable.h"

const struct cmd_entry cmd_table[] = {
    {"listen", cmd_listen, "accept connections and bridge them to stdin/stdout",
     listen_options, CMD_COMPLETE_NONE, CMD_COMPLETE_NONE},
    {"connect", cmd_connect, "connect and bridge stdin/stdout to the socket",
     connect_options, CMD_COMPLETE_HOST, CMD_COMPLETE_NONE, "keep-open"},
    {"echo", cmd_echo, "run an echo server", echo_options,
     CMD_COMPLETE_NONE, CMD_COMPLETE_NONE},
    {"relay", cmd_relay, "forward every accepted connection to a target",
     relay_options, CMD_COMPLETE_NONE, CMD_COMPLETE_NONE},
    {"stats", cmd_stats, "show the live counters of a running iocptool", stats_options,
     CMD_COMPLETE_PID, CMD_COMPLETE_NONE},
    {"keygen", cmd_keygen, "make a pre-shared key for --key", keygen_options, CMD_COMPLETE_FILE,
     CMD_COMPLETE_NONE},
};

const size_t cmd_table_len = sizeof cmd_table / sizeof cmd_table[0];

/*
 * The values of the options that take one, by long name.  A name means the
 * same value in every subcommand that has the option; the metavar is the
 * word --help shows after the option (test_cli_completions checks both).
 */
static const struct cmd_value cmd_values[] = {
    {"allow", "LIST", CMD_COMPLETE_NONE, NULL},
    {"alpn", "LIST", CMD_COMPLETE_NONE, NULL},
    {"backend", "NAME", CMD_COMPLETE_WORDS, "uring epoll iocp"},
    {"balance", "MODE", CMD_COMPLETE_WORDS, "rr leastconn first hash"},
    {"check", "S", CMD_COMPLETE_NONE, NULL},
    {"deny", "LIST", CMD_COMPLETE_NONE, NULL},
    {"fail-timeout", "S", CMD_COMPLETE_NONE, NULL},
    {"fail-window", "S", CMD_COMPLETE_NONE, NULL},
    {"drain-timeout", "S", CMD_COMPLETE_NONE, NULL},
    /* a file, or - for standard output */
    {"hex-dump", "FILE", CMD_COMPLETE_FILE, NULL},
    {"idle-timeout", "S", CMD_COMPLETE_NONE, NULL},
    {"key", "FILE", CMD_COMPLETE_FILE, NULL},
    {"key-listen", "FILE", CMD_COMPLETE_FILE, NULL},
    {"key-target", "FILE", CMD_COMPLETE_FILE, NULL},
    /* a file, or - for standard output */
    {"log", "FILE", CMD_COMPLETE_FILE, NULL},
    {"log-buffer", "KIB", CMD_COMPLETE_NONE, NULL},
    {"log-format", "F", CMD_COMPLETE_WORDS, "json text"},
    {"max-conns", "N", CMD_COMPLETE_NONE, NULL},
    {"max-fails", "N", CMD_COMPLETE_NONE, NULL},
    {"max-datagram", "N", CMD_COMPLETE_NONE, NULL},
    {"pcap", "FILE", CMD_COMPLETE_FILE, NULL},
    {"port", "PORT", CMD_COMPLETE_NONE, NULL},
    {"proxy", "URL", CMD_COMPLETE_NONE, NULL},
    {"proxy-address", "ADDR", CMD_COMPLETE_HOST, NULL},
    {"proxy-auth", "FILE", CMD_COMPLETE_FILE, NULL},
    {"proxy-type", "TYPE", CMD_COMPLETE_WORDS, "4 5 connect"},
    {"quit-after", "S", CMD_COMPLETE_NONE, NULL},
    {"socks5", "ADDR", CMD_COMPLETE_NONE, NULL},
    {"socks5-auth", "FILE", CMD_COMPLETE_FILE, NULL},
    {"source", "ADDR", CMD_COMPLETE_HOST, NULL},
    {"source-port", "PORT", CMD_COMPLETE_NONE, NULL},
    /* a socket PATH, or tcp:[HOST:]PORT */
    {"stats", "ADDR", CMD_COMPLETE_FILE, NULL},
    {"udp-ttl", "S", CMD_COMPLETE_NONE, NULL},
    {"unix-mode", "MODE", CMD_COMPLETE_NONE, NULL},
    {"to-allow", "LIST", CMD_COMPLETE_NONE, NULL},
    {"to-deny", "LIST", CMD_COMPLETE_NONE, NULL},
    {"wait", "S", CMD_COMPLETE_NONE, NULL},
    {"tls-ca", "FILE", CMD_COMPLETE_FILE, NULL},
    {"tls-cert", "FILE", CMD_COMPLETE_FILE, NULL},
    {"tls-key", "FILE", CMD_COMPLETE_FILE, NULL},
    {"tls-min", "V", CMD_COMPLETE_WORDS, "1.2 1.3"},
    {"tls-target-ca", "FILE", CMD_COMPLETE_FILE, NULL},
    {"tls-verify-client", "CA", CMD_COMPLETE_FILE, NULL},
    {"watch", "S", CMD_COMPLETE_NONE, NULL},
    {"workers", "N", CMD_COMPLETE_NONE, NULL},
};

const struct cmd_entry *cmd_find(const char *name)
{
    for (size_t i = 0; i < cmd_table_len; i++)
        if (!strcmp(cmd_table[i].name, name))
            return &cmd_table[i];
    return NULL;
}

const struct cmd_value *cmd_value_of(const char *long_name)
{
    for (size_t i = 0; i < sizeof cmd_values / sizeof cmd_values[0]; i++)
        if (!strcmp(cmd_values[i].option, long_name))
            return &cmd_values[i];
    return NULL;
}

bool cmd_option_listed(const struct cmd_entry *c, const struct option *o)
{
    size_t len = strlen(o->name);
    for (const char *r = c->refused; r && *r;) {
        size_t n = strcspn(r, " ");
        if (n == len && !strncmp(r, o->name, n))
            return false;
        r += n + (r[n] == ' ');
    }
    return true;
}

int cmd_short_of(const struct option *o)
{
    if (o->flag || o->val <= 0 || o->val > 127 || !isalnum(o->val))
        return 0;
    return o->val;
}
