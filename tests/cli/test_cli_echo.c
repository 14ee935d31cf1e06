/* SPDX-License-Identifier: MIT */
/* iocptool echo, driven as a user drives it. */
#include <criterion/criterion.h>

#include "echoclient.h"
#include "proc.h"

TestSuite(cli_echo, .fini = proc_cleanup_all, .timeout = 120);

static struct proc server;

static uint16_t start_echo(const char *extra)
{
    if (extra)
        cr_assert(proc_start(&server, -1, "echo", "-W", "2", extra, "127.0.0.1:0", NULL));
    else
        cr_assert(proc_start(&server, -1, "echo", "-W", "2", "127.0.0.1:0", NULL));
    uint16_t port = proc_listening(&server, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", server.errbuf);
    return port;
}

Test(cli_echo, port_zero_prints_the_real_port_and_echoes_byte_exact)
{
    uint16_t port = start_echo(NULL);
    struct ec_result r = ec_run(port, 50, 256 * 1024, 60000);
    cr_expect_eq(r.ok, 50, "%d ok, %d bad, %d pending", r.ok, r.bad, r.pending);
}

Test(cli_echo, sigint_stops_it_safely_with_status_zero)
{
    uint16_t port = start_echo(NULL);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_expect_eq(proc_signal(&server, SIGINT, 10000), 0, "stderr: %s", server.errbuf);
    cr_expect(tn_wait_eof(fd, 5000), "open connections are closed at stop");
    close(fd);
}

Test(cli_echo, sigterm_stops_it_with_status_zero_and_clean_books)
{
    uint16_t port = start_echo("-v");
    struct ec_result r = ec_run(port, 10, 4096, 20000);
    cr_expect_eq(r.ok, 10);
    cr_expect_eq(proc_signal(&server, SIGTERM, 10000), 0);
    cr_expect_null(strstr(server.errbuf, "mismatch"), "stderr: %s", server.errbuf);
}

Test(cli_echo, a_bad_port_is_a_usage_error_with_a_reason)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, "echo", "70000", NULL));
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect(strstr(p.errbuf, "iocptool: echo: port 70000: too large") != NULL, "stderr: %s",
              p.errbuf);
}

Test(cli_echo, a_port_in_use_is_a_runtime_error)
{
    uint16_t port = start_echo(NULL);
    char arg[32];
    snprintf(arg, sizeof arg, "127.0.0.1:%u", port);
    struct proc p;
    cr_assert(proc_start(&p, -1, "echo", arg, NULL));
    cr_expect_eq(proc_wait(&p, 10000), 1);
    cr_expect(strstr(p.errbuf, "address already in use") != NULL, "stderr: %s", p.errbuf);
}

Test(cli_echo, help_goes_to_stdout_and_exits_zero)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, "echo", "--help", NULL));
    char buf[4096];
    size_t n = tn_read_full(p.out, buf, sizeof buf - 1, 5000);
    buf[n] = '\0';
    cr_expect_eq(proc_wait(&p, 5000), 0);
    cr_expect(strstr(buf, "usage: iocptool echo") != NULL);
    cr_expect_eq(p.errlen, 0, "nothing on stderr: %s", p.errbuf);
}

Test(cli_echo, a_backend_that_cannot_open_falls_back_with_one_verbose_line)
{
    /* The fault layer makes the preferred backend fail to open, as a
     * container that forbids io_uring does. */
    setenv("IOCP_FAULT", "open=1", 1);
    const char *want = getenv("IOCP_BACKEND");
    cr_assert(proc_start(&server, -1, "echo", "-v", "-W", "1", "127.0.0.1:0", NULL));
    unsetenv("IOCP_FAULT");
    uint16_t port = proc_listening(&server, 10000);
    cr_assert_neq(port, 0, "stderr: %s", server.errbuf);
    struct ec_result r = ec_run(port, 5, 4096, 10000);
    cr_expect_eq(r.ok, 5, "the fallback backend serves");
    cr_expect(strstr(server.errbuf, "unavailable") != NULL, "stderr: %s", server.errbuf);
    if (want) {
        char line[64];
        snprintf(line, sizeof line, "backend %s unavailable", want);
        cr_expect(strstr(server.errbuf, line) != NULL, "stderr: %s", server.errbuf);
    }
    cr_expect_eq(proc_signal(&server, SIGTERM, 10000), 0);
}
