/* SPDX-License-Identifier: MIT */
/*
 * A growable text buffer and the few JSON writing helpers iocptool needs:
 * strings escaped by the book (RFC 8259: quotes, backslash, control
 * characters; bytes that are not UTF-8 become U+FFFD), so any peer address
 * or path can go into a document that parses.  The same buffer carries the
 * other text reports (tables, Prometheus exposition), hence printf.
 */
#ifndef IOCPTOOL_JSON_H
#define IOCPTOOL_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct json_buf {
    char *data; /* NUL-terminated while len > 0 or after any append */
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete */
};

/* An empty buffer: struct json_buf b = JSON_BUF_INIT; */
#define JSON_BUF_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

/* Release the memory; the buffer is empty and usable again. */
void json_buf_free(struct json_buf *b);

/* Append formatted text.  On allocation failure sets b->failed and leaves
 * what was there. */
void json_printf(struct json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append len raw bytes. */
void json_append(struct json_buf *b, const void *data, size_t len);

/* Append s as a JSON string, quotes included. */
void json_str(struct json_buf *b, const char *s);

/* Append "key": (the key escaped like any string); a comma first unless
 * first is true. */
void json_key(struct json_buf *b, const char *key, bool first);

#endif /* IOCPTOOL_JSON_H */
