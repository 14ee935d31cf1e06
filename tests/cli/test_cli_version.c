/* SPDX-License-Identifier: MIT */
/*
 * iocptool --version: the version, the backends compiled in and the one used
 * by default, and the platform.  The expected values come from the library
 * (this test links it) and from uname(), not from what the tool was built
 * with.  The encryption line is test_cli_keygen's.
 */
#include <criterion/criterion.h>
#include <sys/utsname.h>

#include "iocp.h"
#include "proc.h"

TestSuite(cli_version, .fini = proc_cleanup_all, .timeout = 30);

/* Run iocptool with one argument; its stdout into out.  Returns the status. */
static int run_version(const char *arg, char *out, size_t len)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, arg, NULL));
    size_t n = tn_read_full(p.out, out, len - 1, 5000);
    out[n] = '\0';
    int status = proc_wait(&p, 5000);
    cr_expect_eq(p.errlen, 0, "nothing on stderr: %s", p.errbuf);
    return status;
}

/* The line of out that starts with prefix, without its newline, or "". */
static const char *line_of(const char *out, const char *prefix)
{
    static char line[512];
    size_t plen = strlen(prefix);
    for (const char *s = out; *s;) {
        const char *end = strchr(s, '\n');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n >= plen && n < sizeof line && !strncmp(s, prefix, plen)) {
            memcpy(line, s, n);
            line[n] = '\0';
            return line;
        }
        s += n + (end != NULL);
    }
    return "";
}

/* The backends line the library's answers call for. */
static void expected_backends(char *buf, size_t len, const char *chosen)
{
    size_t n = (size_t)snprintf(buf, len, "backends:");
    for (const char *const *name = iocp_backends(); *name; name++)
        n += (size_t)snprintf(buf + n, len - n, " %s", *name);
    snprintf(buf + n, len - n, " (default: %s)", chosen);
}

Test(cli_version, first_line_is_the_name_and_the_library_version)
{
    char out[4096];
    cr_assert_eq(run_version("--version", out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "iocptool %s\n", IOCP_VERSION_STRING);
    cr_expect_eq(strncmp(out, want, strlen(want)), 0, "stdout: %s", out);
}

Test(cli_version, short_option_prints_the_same)
{
    char out[4096], out_v[4096];
    cr_assert_eq(run_version("--version", out, sizeof out), 0);
    cr_assert_eq(run_version("-V", out_v, sizeof out_v), 0);
    cr_expect_str_eq(out_v, out);
}

Test(cli_version, lists_the_compiled_backends_best_first_and_the_default)
{
    const char *const *names = iocp_backends();
    cr_assert_not_null(names[0], "a build has at least one backend");
    /* CTest runs this suite once per backend with IOCP_BACKEND set. */
    const char *env = getenv("IOCP_BACKEND");
    char want[256];
    expected_backends(want, sizeof want, env && *env ? env : names[0]);
    char out[4096];
    cr_assert_eq(run_version("--version", out, sizeof out), 0);
    cr_expect_str_eq(line_of(out, "backends:"), want);
}

Test(cli_version, default_without_iocp_backend_is_the_best_backend)
{
    unsetenv("IOCP_BACKEND");
    char want[256];
    expected_backends(want, sizeof want, iocp_backends()[0]);
    char out[4096];
    cr_assert_eq(run_version("--version", out, sizeof out), 0);
    cr_expect_str_eq(line_of(out, "backends:"), want);
}

Test(cli_version, a_backend_not_in_the_build_is_reported_and_not_fatal)
{
    setenv("IOCP_BACKEND", "carrier-pigeon", 1);
    char out[4096];
    cr_assert_eq(run_version("--version", out, sizeof out), 0);
    const char *line = line_of(out, "backends:");
    cr_expect(strstr(line, "(default: none, ") != NULL, "line: %s", line);
    cr_expect(strstr(line, "carrier-pigeon") != NULL, "line: %s", line);
}

Test(cli_version, names_the_platform_as_os_and_machine)
{
    struct utsname u;
    cr_assert_eq(uname(&u), 0);
    char want[128];
    snprintf(want, sizeof want, "platform: linux-%s", u.machine);
    char out[4096];
    cr_assert_eq(run_version("--version", out, sizeof out), 0);
    cr_expect_str_eq(line_of(out, "platform:"), want);
}
