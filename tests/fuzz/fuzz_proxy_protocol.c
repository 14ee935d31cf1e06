/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the PROXY protocol parser (cli/leg/proxy_protocol.c).
 * Each input is parsed whole and prefix by prefix, and these properties
 * hold or the run aborts:
 *
 *   - the parser reads only the bytes it is given (ASan);
 *   - its answer is a length within the input and PROXY_HEADER_MAX, or
 *     PROXY_MORE, PROXY_BAD or PROXY_TOO_LONG;
 *   - it is consistent over prefixes: every prefix shorter than a
 *     complete header asks for more, a refused prefix stays refused when
 *     bytes are added, and the length of a complete header does not
 *     change when bytes follow it;
 *   - what a complete header says builds a header (v1 and v2) that parses
 *     back to the same addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netcompat.h"
#include "proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_proxy_protocol: broken: %s\n", what);
        abort();
    }
}

static bool same_addresses(const struct proxy_addr *a, const struct proxy_addr *b)
{
    size_t n = a->family == AF_INET ? 4 : 16;
    return a->family == b->family &&
           (a->family == 0 || (!memcmp(a->src, b->src, n) && !memcmp(a->dst, b->dst, n) &&
                               a->src_port == b->src_port && a->dst_port == b->dst_port));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that ASan sees any read past it. */
    uint8_t *in = malloc(size ? size : 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    struct proxy_addr whole;
    int rc = proxy_parse(in, size, &whole);
    check(rc == PROXY_MORE || rc == PROXY_BAD || rc == PROXY_TOO_LONG ||
              (rc > 0 && (size_t)rc <= size && rc <= PROXY_HEADER_MAX),
          "result out of range");
    size_t limit = rc > 0 ? (size_t)rc : size;
    for (size_t i = 0; i < limit; i++) {
        struct proxy_addr a;
        int r = proxy_parse(in, i, &a);
        if (rc > 0)
            check(r == PROXY_MORE, "a prefix of a complete header is not 'more'");
        else if (rc == PROXY_MORE)
            check(r == PROXY_MORE, "a prefix of a valid beginning was refused");
        else
            check(r == PROXY_MORE || r == rc || r < 0, "a refused prefix became valid");
        if (r < 0)
            check(rc < 0, "a refused prefix was accepted once longer");
    }
    if (rc > 0) {
        check(whole.family == 0 || whole.family == AF_INET || whole.family == AF_INET6,
              "unknown family");
        char v1[PROXY_V1_MAX + 1];
        unsigned char v2[64];
        struct proxy_addr back;
        size_t n = proxy_build_v1(&whole, v1, sizeof v1);
        check(n > 0 && proxy_parse(v1, n, &back) == (int)n && same_addresses(&whole, &back),
              "v1 rebuild differs");
        n = proxy_build_v2(&whole, v2, sizeof v2);
        check(n > 0 && proxy_parse(v2, n, &back) == (int)n && same_addresses(&whole, &back),
              "v2 rebuild differs");
        char text[64];
        proxy_format_src(&whole, text, sizeof text);
        check((whole.family == 0) == (text[0] == '\0'), "format");
    }
    free(in);
    return 0;
}
