/* SPDX-License-Identifier: MIT */
/*
 * opts.h: bounded number parsing in the spirit of OpenBSD's strtonum, and
 * the address forms every subcommand accepts.
 */
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

bool opt_number(const char *cmd, const char *what, const char *text, long long min, long long max,
                long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end) {
        diag_error("%s: %s %s: not a number", cmd, what, text);
        return false;
    }
    if ((errno == ERANGE && v > 0) || v > max) {
        diag_error("%s: %s %s: too large (at most %lld)", cmd, what, text, max);
        return false;
    }
    if ((errno == ERANGE && v < 0) || v < min) {
        diag_error("%s: %s %s: too small (at least %lld)", cmd, what, text, min);
        return false;
    }
    *out = v;
    return true;
}

bool opt_port(const char *cmd, const char *text, bool allow_zero, uint16_t *out)
{
    long long v;
    if (!opt_number(cmd, "port", text, allow_zero ? 0 : 1, 65535, &v))
        return false;
    *out = (uint16_t)v;
    return true;
}

bool opt_seconds(const char *cmd, const char *what, const char *text, unsigned *ms_out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || v != v) {
        diag_error("%s: %s %s: not a number of seconds", cmd, what, text);
        return false;
    }
    if (v < 0) {
        diag_error("%s: %s %s: must not be negative", cmd, what, text);
        return false;
    }
    if (v > 1e6) {
        diag_error("%s: %s %s: too large (at most 1000000 seconds)", cmd, what, text);
        return false;
    }
    *ms_out = (unsigned)(v * 1000.0 + 0.5);
    return true;
}

bool opt_hostport(const char *cmd, const char *text, char *host, size_t hostlen, uint16_t *port)
{
    const char *port_text = text;
    host[0] = '\0';
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= hostlen) {
            diag_error("%s: %s: expected [ADDRESS]:PORT", cmd, text);
            return false;
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon) {
            if ((size_t)(colon - text) >= hostlen) {
                diag_error("%s: %s: address too long", cmd, text);
                return false;
            }
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            port_text = colon + 1;
        }
    }
    return opt_port(cmd, port_text, true, port);
}
