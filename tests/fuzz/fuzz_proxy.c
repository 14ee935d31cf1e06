/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the proxy protocols' parsers, both sides: the
 * client's view of a SOCKS5 proxy's method choice, password verdict and
 * reply, a SOCKS4 reply and an HTTP CONNECT response
 * (lib/src/proxy_socks.c, proxy_http.c), and the relay's SOCKS5 server
 * reading a client's greeting, credentials and request
 * (cli/leg/socks_wire.c).  The first byte picks the parser.
 *
 * Beyond "no crash, no read out of bounds" (ASan, UBSan), each parser must
 * keep its contract: a result never larger than the input, a complete
 * message parsed again from exactly its own bytes gives the same length,
 * and every shorter prefix of it asks for more or fails, never claims a
 * message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wire.h"
#include "socks_wire.h"

static int parse(unsigned mode, const uint8_t *in, size_t len)
{
    char why[IOCP_PROXY_WHY_MAX];
    int method;
    struct socks5_hello h;
    struct socks5_userpass up;
    struct socks5_request req;
    switch (mode % 8) {
    case 0:
        return iocp__socks5_parse_choice(in, len, (mode & 8) != 0, &method, why, sizeof why);
    case 1:
        return iocp__socks5_parse_auth(in, len, why, sizeof why);
    case 2:
        return iocp__socks5_parse_reply(in, len, why, sizeof why);
    case 3:
        return iocp__socks4_parse_reply(in, len, why, sizeof why);
    case 4:
        return iocp__http_parse_reply(in, len, why, sizeof why);
    case 5:
        return socks5_parse_hello(in, len, &h);
    case 6: {
        int rc = socks5_parse_userpass(in, len, &up);
        if (rc > 0 && (strlen(up.user) > 255 || strlen(up.pass) > 255))
            abort();
        return rc;
    }
    default: {
        int rc = socks5_parse_request(in, len, &req);
        if (rc > 0 && strlen(req.host) > 255)
            abort();
        return rc;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    /* A copy of exactly len bytes, so that ASan sees any read past it. */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, in, len);
    int rc = parse(mode, copy, len);
    if (rc > (int)len)
        abort();
    if (rc > 0) {
        if (parse(mode, copy, (size_t)rc) != rc)
            abort();
        /* Shorter prefixes never claim a message (the HTTP parser may
         * decide on the status line alone, so it is left out). */
        if (mode % 8 != 4)
            for (size_t i = 0; i < (size_t)rc; i++)
                if (parse(mode, copy, i) > 0)
                    abort();
    }
    free(copy);
    return 0;
}
