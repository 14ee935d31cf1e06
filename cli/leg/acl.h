/* SPDX-License-Identifier: MIT */
/*
 * Access lists for listen: --allow and --deny with addresses and CIDR
 * ranges, IPv4 and IPv6.
 *
 * A client is admitted when no --deny rule matches it and, if any --allow
 * rule was given, at least one --allow rule matches it: deny wins a
 * conflict.  An IPv4 client that reaches a dual-stack listener arrives as an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d); it is matched as the IPv4
 * address it is, so "--allow 127.0.0.1" works on every listener.
 */
#ifndef IOCPTOOL_ACL_H
#define IOCPTOOL_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

struct acl_rule {
    int family;             /* AF_INET or AF_INET6 */
    unsigned prefix;        /* significant leading bits */
    unsigned char addr[16]; /* 4 bytes used for AF_INET, masked to the prefix */
};

struct acl {
    struct acl_rule *allow, *deny;
    size_t nallow, ndeny;
};

/*
 * acl_add(acl, deny, text, why, whylen):
 * Add the rules in text: one or more comma-separated numeric addresses,
 * each optionally followed by "/PREFIX" (0-32 for IPv4, 0-128 for IPv6);
 * IPv6 addresses may be written in brackets.  On a bad entry return false
 * and put the reason in why (the acl keeps the rules added before it).
 */
bool acl_add(struct acl *acl, bool deny, const char *text, char *why, size_t whylen);

/* True when the acl has no rule at all (everyone is admitted). */
bool acl_empty(const struct acl *acl);

/* Whether the client at sa (AF_INET or AF_INET6) is admitted. */
bool acl_admits(const struct acl *acl, const struct sockaddr *sa);

/* Free the rules; the acl is empty again. */
void acl_fini(struct acl *acl);

#endif /* IOCPTOOL_ACL_H */
