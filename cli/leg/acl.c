/* SPDX-License-Identifier: MIT */
/*
 * acl.h: parsing and matching of --allow and --deny.  Rules are kept as
 * masked addresses so that matching is a byte compare over the prefix; an
 * IPv4-mapped IPv6 rule or client is turned into plain IPv4 first, so one
 * rule covers a client whether it came through an IPv4 or a dual-stack
 * socket.
 */
#include "acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netcompat.h"

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Clear every bit after the first prefix bits. */
static void mask(unsigned char *addr, size_t len, unsigned prefix)
{
    for (size_t i = 0; i < len; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
        addr[i] &= (unsigned char)(0xff00u >> keep);
    }
}

static bool parse_one(const char *entry, struct acl_rule *r, char *why, size_t whylen)
{
    char text[128];
    size_t n = strlen(entry);
    if (n == 0 || n >= sizeof text) {
        snprintf(why, whylen, "%s: %s", entry, n ? "too long" : "empty address");
        return false;
    }
    memcpy(text, entry, n + 1);

    long prefix = -1;
    char *slash = strchr(text, '/');
    if (slash) {
        char *end;
        *slash = '\0';
        prefix = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || prefix < 0) {
            snprintf(why, whylen, "%s: prefix length is not a number", entry);
            return false;
        }
    }
    char *host = text;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }

    memset(r, 0, sizeof *r);
    if (inet_pton(AF_INET, host, r->addr) == 1) {
        r->family = AF_INET;
        if (prefix > 32) {
            snprintf(why, whylen, "%s: prefix length too large (at most 32 for IPv4)", entry);
            return false;
        }
        r->prefix = prefix < 0 ? 32 : (unsigned)prefix;
        mask(r->addr, 4, r->prefix);
        return true;
    }
    if (inet_pton(AF_INET6, host, r->addr) == 1) {
        r->family = AF_INET6;
        if (prefix > 128) {
            snprintf(why, whylen, "%s: prefix length too large (at most 128 for IPv6)", entry);
            return false;
        }
        r->prefix = prefix < 0 ? 128 : (unsigned)prefix;
        if (r->prefix >= 96 && memcmp(r->addr, v4mapped_prefix, 12) == 0) {
            /* ::ffff:a.b.c.d/N is the IPv4 range a.b.c.d/(N-96). */
            memmove(r->addr, r->addr + 12, 4);
            memset(r->addr + 4, 0, 12);
            r->family = AF_INET;
            r->prefix -= 96;
            mask(r->addr, 4, r->prefix);
            return true;
        }
        mask(r->addr, 16, r->prefix);
        return true;
    }
    snprintf(why, whylen, "%s: not a numeric IPv4 or IPv6 address", entry);
    return false;
}

bool acl_add(struct acl *acl, bool deny, const char *text, char *why, size_t whylen)
{
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char entry[160];
        if (n >= sizeof entry) {
            snprintf(why, whylen, "%.40s...: too long", p);
            return false;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        struct acl_rule r;
        if (!parse_one(entry, &r, why, whylen))
            return false;
        struct acl_rule **list = deny ? &acl->deny : &acl->allow;
        size_t *count = deny ? &acl->ndeny : &acl->nallow;
        struct acl_rule *grown = realloc(*list, (*count + 1) * sizeof *grown);
        if (!grown) {
            snprintf(why, whylen, "out of memory");
            return false;
        }
        grown[(*count)++] = r;
        *list = grown;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

bool acl_empty(const struct acl *acl)
{
    return acl->nallow == 0 && acl->ndeny == 0;
}

static bool matches(const struct acl_rule *rules, size_t n, int family, const unsigned char *addr)
{
    size_t len = family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < n; i++) {
        if (rules[i].family != family)
            continue;
        unsigned char masked[16];
        memcpy(masked, addr, len);
        mask(masked, len, rules[i].prefix);
        if (memcmp(masked, rules[i].addr, len) == 0)
            return true;
    }
    return false;
}

bool acl_admits(const struct acl *acl, const struct sockaddr *sa)
{
    unsigned char addr[16];
    int family = sa->sa_family;
    if (family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        if (memcmp(addr, v4mapped_prefix, 12) == 0) {
            memmove(addr, addr + 12, 4);
            family = AF_INET;
        }
    } else {
        return acl_empty(acl);
    }
    if (matches(acl->deny, acl->ndeny, family, addr))
        return false;
    return acl->nallow == 0 || matches(acl->allow, acl->nallow, family, addr);
}

void acl_fini(struct acl *acl)
{
    free(acl->allow);
    free(acl->deny);
    memset(acl, 0, sizeof *acl);
}
