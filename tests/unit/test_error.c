/* SPDX-License-Identifier: MIT */
/* Error codes: names, messages and the errno conversion. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "iocp.h"
#include "internal.h"

Test(error, every_code_has_a_name_and_a_message)
{
#define CHECK(name, value, msg)                                                                    \
    cr_expect_str_eq(iocp_err_name(IOCP_##name), #name);                                          \
    cr_expect_str_eq(iocp_strerror(IOCP_##name), msg);                                            \
    cr_expect_lt(IOCP_##name, 0, #name " must be negative");
    IOCP_ERRNO_MAP(CHECK)
#undef CHECK
}

Test(error, codes_are_distinct)
{
    static const int codes[] = {
#define VAL(name, value, msg) value,
        IOCP_ERRNO_MAP(VAL)
#undef VAL
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_expect_neq(codes[i], codes[j], "codes %zu and %zu share %d", i, j, codes[i]);
}

Test(error, codes_equal_negated_errno_on_linux)
{
#ifndef __linux__
    cr_skip_test("errno values are Linux's own only on Linux");
#endif
    cr_expect_eq(IOCP_EINVAL, -EINVAL);
    cr_expect_eq(IOCP_ECONNREFUSED, -ECONNREFUSED);
    cr_expect_eq(IOCP_EMFILE, -EMFILE);
    cr_expect_eq(IOCP_ECANCELED, -ECANCELED);
    cr_expect_eq(iocp__err_from_errno(ECONNRESET), IOCP_ECONNRESET);
    cr_expect_eq(iocp__err_from_errno(EWOULDBLOCK), IOCP_EAGAIN);
}

Test(error, positive_codes_are_read_as_their_negation)
{
    cr_expect_str_eq(iocp_strerror(-IOCP_ETIMEDOUT), iocp_strerror(IOCP_ETIMEDOUT));
    cr_expect_str_eq(iocp_err_name(-IOCP_ETIMEDOUT), "ETIMEDOUT");
}

Test(error, unknown_codes_never_give_null)
{
    cr_expect_str_eq(iocp_strerror(-3999), "unknown error");
    cr_expect_str_eq(iocp_err_name(-3999), "UNKNOWN");
    cr_expect_str_eq(iocp_strerror(0), "success");
    cr_expect_eq(iocp__err_from_errno(0), IOCP_EIO, "errno 0 is not a success to convert");
}
