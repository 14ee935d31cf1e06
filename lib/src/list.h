/* SPDX-License-Identifier: MIT */
/*
 * Intrusive circular doubly linked lists with a sentinel head (seeds 4-6).
 *
 * A node is a member of the object that owns it, so adding, removing and
 * walking never allocate, and one object can sit in several lists at once
 * (the online list and a hash chain, say).  Removal re-initialises the node
 * so that a second removal is harmless and iocp_list_linked() tells whether a
 * node is in a list.  Nothing here locks: the caller's lock, or a CAS flag
 * decided before the list is touched (casflag.h), makes membership safe.
 */
#ifndef IOCP_LIST_H
#define IOCP_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct iocp_list {
    struct iocp_list *next;
    struct iocp_list *prev;
};

/* The object that contains node as its member `member`. */
#define iocp_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define iocp_list_entry(node, type, member) iocp_container_of(node, type, member)

/* A head or a node that is in no list points at itself. */
static inline void iocp_list_init(struct iocp_list *head)
{
    head->next = head;
    head->prev = head;
}

static inline bool iocp_list_empty(const struct iocp_list *head)
{
    return head->next == head;
}

/* True when node is in some list (its neighbours are not itself). */
static inline bool iocp_list_linked(const struct iocp_list *node)
{
    return node->next != node;
}

static inline void iocp__list_link(struct iocp_list *node, struct iocp_list *prev,
                                   struct iocp_list *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

static inline void iocp_list_insert_head(struct iocp_list *head, struct iocp_list *node)
{
    iocp__list_link(node, head, head->next);
}

static inline void iocp_list_insert_tail(struct iocp_list *head, struct iocp_list *node)
{
    iocp__list_link(node, head->prev, head);
}

/*
 * Unlink node and point it at itself.  Removing a node that is in no list
 * (already removed, or only initialised) changes nothing.
 */
static inline void iocp_list_remove(struct iocp_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    iocp_list_init(node);
}

/* The first node, or NULL when the list is empty. */
static inline struct iocp_list *iocp_list_first(const struct iocp_list *head)
{
    return iocp_list_empty(head) ? NULL : head->next;
}

/*
 * Walk the list.  The _safe form reads the next node before the body runs,
 * so the body may remove (and free) the current node.
 */
#define iocp_list_foreach(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
#define iocp_list_foreach_safe(pos, tmp, head)                                                     \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif /* IOCP_LIST_H */
