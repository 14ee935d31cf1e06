/* SPDX-License-Identifier: MIT */
/*
 * The stats endpoint of iocptool's servers and the `stats` subcommand that
 * reads it: counts that agree with what the test holds open, the output
 * formats, who may connect, garbage on the wire, and finding the running
 * instances.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <grp.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "nc_support.h"
#include "statsclient.h"

static char tmpdir[64];
static char epdir[128]; /* $XDG_RUNTIME_DIR/iocptool */

static void stats_init(void)
{
    nc_dir_init(tmpdir, sizeof tmpdir, "stats");
    snprintf(epdir, sizeof epdir, "%s/iocptool", tmpdir);
}

static void stats_fini(void)
{
    nc_dir_fini(tmpdir);
}

TestSuite(cli_stats, .init = stats_init, .fini = stats_fini, .timeout = 60);

/* ---- helpers ---- */

static char *read_all(int fd, size_t *len_out, unsigned timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

/* Run `iocptool stats ARGS...`: its stdout (malloc'd), status and stderr. */
static char *run_stats_v(int *status, char *err, size_t errlen, char **args)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    argv[n++] = "stats";
    while (*args && n < 15)
        argv[n++] = *args++;
    argv[n] = NULL;
    struct proc p;
    cr_assert(proc_startv(&p, -1, argv));
    char *out = read_all(p.out, NULL, 15000);
    *status = proc_wait(&p, 10000);
    if (err) {
        size_t k = strlen(p.errbuf) < errlen - 1 ? strlen(p.errbuf) : errlen - 1;
        memcpy(err, p.errbuf, k);
        err[k] = '\0';
    }
    return out;
}

#define run_stats(status, ...) run_stats_v(status, NULL, 0, (char *[]){__VA_ARGS__, NULL})
#define run_stats_err(status, err, ...)                                                            \
    run_stats_v(status, err, sizeof err, (char *[]){__VA_ARGS__, NULL})

/* echo -W 2 [extra...] 127.0.0.1:0; the port. */
static uint16_t start_echo(struct proc *p, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    argv[n++] = "echo";
    argv[n++] = "-W";
    argv[n++] = "2";
    va_list ap;
    va_start(ap, p);
    char *a;
    while (n < 14 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "127.0.0.1:0";
    argv[n] = NULL;
    cr_assert(proc_startv(p, -1, argv));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* Stop a server the way a user does and check that it leaves cleanly. */
static void expect_clean_exit(struct proc *p)
{
    cr_expect_eq(proc_signal(p, SIGTERM, 10000), 0, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

/* The server still echoes to a client. */
static void expect_still_echoing(uint16_t port)
{
    int c = tn_connect(port);
    cr_assert(tn_write_all(c, "ok", 2));
    char b[2];
    cr_expect_eq(tn_read_full(c, b, 2, 5000), 2, "echo still echoes");
    close(c);
}

/* The default endpoint of a server started by the test. */
static const char *default_path(const struct proc *p)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%d.sock", epdir, (int)p->pid);
    return path;
}

/* Ask an endpoint directly, as any client of the protocol would. */
static char *ep_ask(const char *path, const char *request)
{
    int fd = stats_connect(path);
    cr_assert_geq(fd, 0, "connect %s: %s", path, strerror(errno));
    cr_assert(tn_write_all(fd, request, strlen(request)));
    char *out = read_all(fd, NULL, 10000);
    close(fd);
    return out;
}

/* The counted/walked numbers once they reach want (the server accepts and
 * closes asynchronously), or the last answer at the deadline. */
static char *wait_online(const char *endpoint, long long want)
{
    char *json = NULL;
    uint64_t end = tn_now_ms() + 10000;
    while (tn_now_ms() < end) {
        free(json);
        int st;
        json = run_stats(&st, "--json", (char *)endpoint);
        if (stats_json_number(json, "counted") == want && stats_json_number(json, "walked") == want)
            break;
        usleep(50000);
    }
    return json;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

/* python3's json module, when there is one, says whether text parses. */
static bool json_parses(const char *text)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return true;
    char path[256];
    snprintf(path, sizeof path, "%s/doc.json", tmpdir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if "
             "l.strip()]' %s",
             path);
    return system(cmd) == 0;
}

/* ---- counts ---- */

Test(cli_stats, five_hundred_connections_are_walked_counted_and_listed)
{
    struct proc echo;
    uint16_t port = start_echo(&echo, NULL);
    const char *ep = default_path(&echo);
    enum { N = 500, CLOSE = 200 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0, "connection %d", i);
    }
    char *json = wait_online(ep, N);
    cr_expect_eq(stats_json_number(json, "counted"), N, "%s", json);
    cr_expect_eq(stats_json_number(json, "walked"), N);
    cr_expect_eq(stats_json_number(json, "hashed"), N);
    cr_expect_not_null(strstr(json, "\"agree\":true"));
    cr_expect_eq(stats_json_number(json, "server_connections"), N);
    cr_expect(json_parses(json), "valid JSON: %s", json);
    free(json);

    for (int i = 0; i < CLOSE; i++)
        close(fds[i]);
    json = wait_online(ep, N - CLOSE);
    cr_expect_eq(stats_json_number(json, "counted"), N - CLOSE, "%s", json);
    cr_expect_eq(stats_json_number(json, "walked"), N - CLOSE);
    cr_expect_eq(stats_json_number(json, "closed"), CLOSE);
    cr_expect_eq(stats_json_number(json, "accepted"), N);
    free(json);

    int st;
    char *list = run_stats(&st, "--clients", (char *)ep);
    cr_expect_eq(st, 0);
    cr_expect_eq(count_lines(list), N - CLOSE, "one line per connection");
    /* Each line: ID PEER AGE IDLE IN OUT, the peer one of ours. */
    unsigned long long id, in, out;
    char peer[64];
    double age, idle;
    cr_expect_eq(sscanf(list, "%llu %63s %lf %lf %llu %llu", &id, peer, &age, &idle, &in, &out), 6,
                 "%s", list);
    cr_expect_eq(strncmp(peer, "127.0.0.1:", 10), 0);
    free(list);

    list = run_stats(&st, "--clients", "--json", (char *)ep);
    cr_expect_eq(st, 0);
    cr_expect(json_parses(list));
    size_t ids = 0;
    for (const char *p = list; (p = strstr(p, "\"id\":")) != NULL; p++)
        ids++;
    cr_expect_eq(ids, N - CLOSE);
    free(list);
    for (int i = CLOSE; i < N; i++)
        close(fds[i]);
    expect_clean_exit(&echo);
}

Test(cli_stats, the_table_leads_with_connections_rates_and_errors)
{
    struct proc echo;
    uint16_t port = start_echo(&echo, NULL);
    int fd = tn_connect(port);
    cr_assert(tn_write_all(fd, "hello", 5));
    char b[5];
    cr_assert_eq(tn_read_full(fd, b, 5, 5000), 5);
    int st;
    char *t = run_stats(&st, (char *)default_path(&echo));
    cr_expect_eq(st, 0);
    /* What an operator wants, in this order, right after the heading. */
    const char *lines[] = {"iocptool echo",
                           "\nlistening     127.0.0.1:",
                           "\nconnections   1 open, 1 accepted",
                           "\nrates         in ",
                           "\ntraffic       in 5 B, out 5 B",
                           "\nerrors        0 failed accepts"};
    const char *at = t;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const char *found = strstr(at, lines[i]);
        cr_expect_not_null(found, "'%s' after what came before, in: %s", lines[i], t);
        at = found ? found : at;
    }
    /* The registry's internals only with -v. */
    const char *internals[] = {"walked", "hashed", "chain", "pending", "contexts", "completions"};
    for (size_t i = 0; i < sizeof internals / sizeof internals[0]; i++)
        cr_expect_null(strstr(t, internals[i]), "no '%s' without -v: %s", internals[i], t);
    free(t);

    t = run_stats(&st, "-v", (char *)default_path(&echo));
    cr_expect_eq(st, 0);
    const char *verbose[] = {
        "\nconnections   1 open", "\nregistry      1 counted, 1 walked, 1 hashed: agree",
        "\nhash          ",       "\naccepts       ",
        "\npool          ",       "\nworker "};
    at = t;
    for (size_t i = 0; i < sizeof verbose / sizeof verbose[0]; i++) {
        const char *found = strstr(at, verbose[i]);
        cr_expect_not_null(found, "-v: '%s' after what came before, in: %s", verbose[i], t);
        at = found ? found : at;
    }
    free(t);
    close(fd);
}

/* Every line of the exposition is a comment or "name{labels} value". */
static bool prometheus_line_ok(const char *line)
{
    if (line[0] == '#')
        return !strncmp(line, "# HELP iocptool_", 16) || !strncmp(line, "# TYPE iocptool_", 16);
    const char *p = line;
    if (strncmp(p, "iocptool_", 9) != 0)
        return false;
    while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
        p++;
    if (*p == '{') {
        const char *close = strchr(p, '}');
        if (!close)
            return false;
        /* label="value" pairs */
        for (const char *q = p + 1; q < close;) {
            while (q < close && (isalnum((unsigned char)*q) || *q == '_'))
                q++;
            if (*q++ != '=' || *q++ != '"')
                return false;
            while (q < close && *q != '"')
                q += *q == '\\' ? 2 : 1;
            if (*q++ != '"')
                return false;
            if (*q == ',')
                q++;
        }
        p = close + 1;
    }
    if (*p++ != ' ')
        return false;
    char *end;
    strtod(p, &end);
    return end != p && *end == '\0';
}

Test(cli_stats, prometheus_output_parses)
{
    struct proc echo;
    uint16_t port = start_echo(&echo, NULL);
    int fd = tn_connect(port);
    int st;
    char *text = run_stats(&st, "--prometheus", (char *)default_path(&echo));
    cr_expect_eq(st, 0);
    size_t samples = 0;
    bool counters_total = true;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cr_expect(prometheus_line_ok(line), "bad line: '%s'", line);
        if (!strncmp(line, "# TYPE ", 7) && strstr(line, " counter") &&
            !strstr(line, "_total counter"))
            counters_total = false;
        if (line[0] != '#')
            samples++;
    }
    cr_expect(counters_total, "every counter ends in _total");
    cr_expect_gt(samples, 20);
    free(text);
    close(fd);
}

Test(cli_stats, every_worker_is_reported_beyond_the_first_64)
{
    enum { W = 70 };
    struct proc echo;
    cr_assert(proc_start(&echo, -1, "echo", "-W", "70", "127.0.0.1:0", NULL));
    cr_assert_neq(proc_listening(&echo, 20000), 0, "%s", echo.errbuf);
    const char *ep = default_path(&echo);
    int st;
    char *json = run_stats(&st, "--json", (char *)ep);
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "workers"), W);
    size_t n = 0;
    for (const char *p = json; (p = strstr(p, "{\"worker\":")) != NULL; p++)
        n++;
    cr_expect_eq(n, W, "per_worker has %zu entries: %s", n, json);
    cr_expect_not_null(strstr(json, "{\"worker\":69,"), "%s", json);
    free(json);
    char *prom = run_stats(&st, "--prometheus", (char *)ep);
    cr_expect_not_null(strstr(prom, "iocptool_worker_connections{worker=\"69\"}"), "%s", prom);
    free(prom);
    char *table = run_stats(&st, "-v", (char *)ep);
    cr_expect_not_null(strstr(table, "\n69 "), "%s", table);
    free(table);
    expect_clean_exit(&echo);
}

Test(cli_stats, rates_compare_with_the_previous_sample)
{
    struct proc echo;
    start_echo(&echo, NULL);
    const char *ep = default_path(&echo);
    int st;
    /* Rule: a request takes a sample when the last is a second old; the
     * first compares with the start. */
    usleep(1100000);
    char *first = run_stats(&st, "--json", (char *)ep);
    cr_expect_not_null(strstr(first, "\"since_start\":true"), "%s", first);
    usleep(1100000);
    char *second = run_stats(&st, "--json", (char *)ep);
    cr_expect_not_null(strstr(second, "\"since_start\":false"), "%s", second);
    cr_expect_geq(stats_json_number(second, "interval_ms"), 1000);
    free(first);
    free(second);
}

/* ---- where the endpoint lives, and who may use it ---- */

Test(cli_stats, the_endpoint_is_0600_in_a_0700_directory_and_goes_away_at_exit)
{
    struct proc echo;
    start_echo(&echo, "-v", NULL);
    const char *ep = default_path(&echo);
    proc_pump_err(&echo, 100);
    cr_expect_not_null(strstr(echo.errbuf, ep), "-v names it: %s", echo.errbuf);
    struct stat st;
    cr_assert_eq(lstat(epdir, &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0700, "directory mode %o", st.st_mode & 0777);
    cr_expect_eq(st.st_uid, geteuid());
    cr_assert_eq(lstat(ep, &st), 0);
    cr_expect(S_ISSOCK(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
    cr_expect_eq(proc_signal(&echo, SIGTERM, 10000), 0);
    cr_expect_neq(lstat(ep, &st), 0, "removed at exit");
}

/* Try to connect to path as uid/gid 65534 ('nobody'); the errno, or 0. */
static int connect_as_nobody(const char *path, bool *answered)
{
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int result[2] = {0, 0};
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
            result[0] = -1;
        } else {
            int fd = stats_connect(path);
            if (fd < 0) {
                result[0] = errno;
            } else {
                /* Connected (the mode let us in): the endpoint itself must
                 * still refuse to answer. */
                tn_write_all(fd, "stats\n", 6);
                char b[64];
                result[1] = tn_read_full(fd, b, sizeof b, 3000) > 0;
                close(fd);
            }
        }
        ssize_t w = write(pipefd[1], result, sizeof result);
        _exit(w == sizeof result ? 0 : 1);
    }
    close(pipefd[1]);
    int result[2] = {-2, 0};
    cr_assert_eq(read(pipefd[0], result, sizeof result), (ssize_t)sizeof result);
    close(pipefd[0]);
    waitpid(pid, NULL, 0);
    cr_assert_neq(result[0], -1, "could not become nobody");
    *answered = result[1];
    return result[0];
}

Test(cli_stats, another_user_cannot_connect)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch to another uid (CI runs as root)");
    struct proc echo;
    start_echo(&echo, NULL);
    bool answered = false;
    int err = connect_as_nobody(default_path(&echo), &answered);
    cr_expect(err == EACCES || err == EPERM, "connect as nobody: %s", strerror(err));
    cr_expect_not(answered);
}

Test(cli_stats, another_user_gets_no_answer_even_if_the_file_is_opened_up)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch to another uid (CI runs as root)");
    /* A path of the user's choosing, in a directory anyone can search, and
     * the socket then made world-writable: the kernel lets nobody connect,
     * the endpoint's peer check must still turn it away. */
    char dir[160], path[192];
    snprintf(dir, sizeof dir, "%s/open", tmpdir);
    snprintf(path, sizeof path, "%s/ep.sock", dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    chmod(tmpdir, 0755);
    struct proc echo;
    start_echo(&echo, "--stats", path, NULL);
    cr_assert_eq(chmod(path, 0666), 0);
    bool answered = true;
    int err = connect_as_nobody(path, &answered);
    cr_expect_eq(err, 0, "the kernel lets it connect: %s", strerror(err));
    cr_expect_not(answered, "but nothing is said to it");
    /* The owner still gets answers. */
    int st;
    char *json = run_stats(&st, "--json", path);
    cr_expect_eq(st, 0);
    free(json);
}

/* ---- garbage and stalled clients ---- */

Test(cli_stats, garbage_gets_an_error_and_never_hurts_the_server)
{
    struct proc echo;
    uint16_t port = start_echo(&echo, NULL);
    const char *ep = default_path(&echo);

    /* A megabyte of random bytes. */
    size_t len = 1 << 20;
    unsigned char *junk = malloc(len);
    tn_pattern(junk, len, 4242, 0);
    int fd = stats_connect(ep);
    cr_assert_geq(fd, 0);
    size_t sent = 0;
    tn_set_nonblock(fd, true);
    uint64_t end = tn_now_ms() + 10000;
    char *answer = NULL;
    size_t alen = 0;
    while (tn_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        poll(&pfd, 1, 100);
        if (sent < len) {
            ssize_t w = send(fd, junk + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                break; /* the endpoint closed: fine */
        }
        char buf[256];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN))
            break;
        if (r > 0) {
            answer = realloc(answer, alen + (size_t)r + 1);
            memcpy(answer + alen, buf, (size_t)r);
            alen += (size_t)r;
            answer[alen] = '\0';
        }
    }
    close(fd);
    free(junk);
    /* The answer is an error line; on a loaded machine the close after the
     * endpoint's drain time can reach us as a reset before we read it, so
     * only what did arrive is checked here (the lines below check the error
     * lines themselves). */
    cr_expect(!answer || !strncmp(answer, "error: ", 7), "an error line: %s", answer);
    free(answer);

    /* Too long, unknown, embedded NUL: an error line each. */
    char longline[300];
    memset(longline, 'x', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    char *a = ep_ask(ep, longline);
    cr_expect_str_eq(a, "error: request too long\n");
    free(a);
    a = ep_ask(ep, "statistics please\n");
    cr_expect_eq(strncmp(a, "error: unknown request", 22), 0, "%s", a);
    free(a);

    /* The server and the endpoint go on. */
    int st;
    char *json = run_stats(&st, "--json", (char *)ep);
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "counted"), 0, "%s", json);
    free(json);
    expect_still_echoing(port);
    expect_clean_exit(&echo);
}

Test(cli_stats, a_request_without_a_newline_is_answered_at_eof)
{
    struct proc echo;
    start_echo(&echo, NULL);
    int fd = stats_connect(default_path(&echo));
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "json", 4));
    shutdown(fd, SHUT_WR);
    char *a = read_all(fd, NULL, 5000);
    cr_expect_eq(a[0], '{', "%s", a);
    free(a);
    close(fd);
}

Test(cli_stats, stalled_clients_do_not_keep_the_next_one_out)
{
    struct proc echo;
    start_echo(&echo, NULL);
    const char *ep = default_path(&echo);
    /* More connections than the endpoint has slots (32): half of them say
     * nothing, half send a request without its end, and all hold on. */
    enum { N = 48 };
    int stalled[N];
    for (int i = 0; i < N; i++) {
        stalled[i] = stats_connect(ep);
        cr_assert_geq(stalled[i], 0);
        if (i % 2)
            cr_assert(tn_write_all(stalled[i], "js", 2));
    }
    int st;
    char *json = run_stats(&st, "--json", (char *)ep);
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "pid"), echo.pid, "%s", json);
    free(json);
    /* The query got in by pushing stalled clients out (each is told it was
     * busy), not by waiting for their 5 s read deadline: none of them was
     * closed without that word.  This holds however slow the machine. */
    int told = 0, dropped = 0;
    for (int i = 0; i < N; i++) {
        char buf[256];
        ssize_t n = 0, k = -1;
        tn_set_nonblock(stalled[i], true);
        while ((size_t)n < sizeof buf - 1 &&
               (k = read(stalled[i], buf + n, sizeof buf - 1 - (size_t)n)) > 0)
            n += k;
        buf[n] = '\0';
        bool open = k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && n == 0;
        if (strstr(buf, "error: busy"))
            told++;
        else if (!open)
            dropped++;
        close(stalled[i]);
    }
    cr_expect_gt(told, 0, "stalled clients were pushed out for the query");
    cr_expect_eq(dropped, 0, "no stalled client was closed for its deadline before the answer");
    expect_clean_exit(&echo);
}

Test(cli_stats, a_storm_of_queries_is_answered_in_full)
{
    struct proc echo;
    uint16_t port = start_echo(&echo, NULL);
    const char *ep = default_path(&echo);
    /* Nearly four times the endpoint's slots, and more than its backlog. */
    enum { N = 120 };
    struct storm r = stats_storm(ep, N);
    cr_expect_eq(r.failed, 0, "%d answered, %d refused, %d failed", r.answered, r.refused,
                 r.failed);
    cr_expect_eq(r.answered, N, "%d answered, %d refused, %d failed", r.answered, r.refused,
                 r.failed);
    /* And once more, for a storm that meets stalled connections. */
    int stalled[40];
    for (int i = 0; i < 40; i++) {
        stalled[i] = stats_connect(ep);
        cr_assert_geq(stalled[i], 0);
    }
    r = stats_storm(ep, N);
    cr_expect_eq(r.failed, 0, "with stalled ones: %d answered, %d refused, %d failed", r.answered,
                 r.refused, r.failed);
    cr_expect_eq(r.answered, N, "with stalled ones: %d answered, %d refused, %d failed", r.answered,
                 r.refused, r.failed);
    for (int i = 0; i < 40; i++)
        close(stalled[i]);
    /* The server never noticed. */
    expect_still_echoing(port);
    expect_clean_exit(&echo);
}

Test(cli_stats, out_of_descriptors_the_endpoint_waits_without_spinning_then_answers)
{
    /* The server gets 64 descriptors (set before it starts: the child
     * inherits the limit), then more clients than that. */
    enum { LIMIT = 64, N = 80 };
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = (struct rlimit){LIMIT, old.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct proc echo;
    bool started = proc_start(&echo, -1, "echo", "-W", "2", "127.0.0.1:0", NULL);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert(started);
    uint16_t port = proc_listening(&echo, 15000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", echo.errbuf);
    const char *ep = default_path(&echo);

    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0);
    }
    uint64_t end = tn_now_ms() + 15000;
    while (proc_fds_below(echo.pid, LIMIT) < LIMIT && tn_now_ms() < end)
        usleep(20000);
    cr_assert_eq(proc_fds_below(echo.pid, LIMIT), LIMIT, "the server has every descriptor it may");

    /* A query waits in the endpoint's backlog: its listening socket is
     * readable all along, and accepting fails. */
    int q = stats_connect(ep);
    cr_assert_geq(q, 0);
    cr_assert(tn_write_all(q, "json\n", 5));
    uint64_t c0 = proc_cpu_ms(echo.pid), t0 = tn_now_ms();
    struct pollfd none = {.fd = -1};
    poll(&none, 0, 2000);
    uint64_t used = proc_cpu_ms(echo.pid) - c0, wall = tn_now_ms() - t0;
    cr_log_info("out of descriptors: %llu ms of CPU in %llu ms", (unsigned long long)used,
                (unsigned long long)wall);
    /* Backing off costs next to nothing; spinning costs a whole core. */
    cr_expect_lt(used * 10, wall * 3, "%llu ms of CPU in %llu ms while out of descriptors",
                 (unsigned long long)used, (unsigned long long)wall);

    /* Descriptors come back: the waiting query is answered, and so is the
     * next one. */
    for (int i = 0; i < N; i++)
        close(fds[i]);
    char *a = read_all(q, NULL, 10000);
    cr_expect_eq(a[0], '{', "the waiting query: '%s'", a);
    free(a);
    close(q);
    int st;
    char *json = run_stats(&st, "--json", (char *)ep);
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "pid"), echo.pid, "%s", json);
    free(json);
    expect_clean_exit(&echo);
}

/* ---- finding the server ---- */

Test(cli_stats, no_running_server_is_status_one_with_a_reason)
{
    int st;
    char err[512];
    char *out = run_stats_err(&st, err, "--json");
    cr_expect_eq(st, 1);
    cr_expect_str_eq(out, "", "nothing on stdout");
    cr_expect_not_null(strstr(err, "iocptool: stats: no running iocptool server found"), "%s", err);
    free(out);
}

Test(cli_stats, the_single_server_is_found_without_an_argument)
{
    struct proc echo;
    start_echo(&echo, NULL);
    int st;
    char *json = run_stats(&st, "--json");
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "pid"), echo.pid, "%s", json);
    cr_expect_not_null(strstr(json, "\"command\":\"echo\""));
    free(json);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)echo.pid);
    json = run_stats(&st, "--json", pid);
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "pid"), echo.pid, "by pid: %s", json);
    free(json);
}

Test(cli_stats, several_servers_are_listed)
{
    struct proc e1, e2;
    start_echo(&e1, NULL);
    start_echo(&e2, NULL);
    int st;
    char err[512];
    char *out = run_stats_err(&st, err, NULL);
    cr_expect_eq(st, 0);
    char want1[192], want2[192];
    snprintf(want1, sizeof want1, "%d %s", (int)e1.pid, epdir);
    snprintf(want2, sizeof want2, "%d %s", (int)e2.pid, epdir);
    cr_expect_not_null(strstr(out, want1), "%s", out);
    cr_expect_not_null(strstr(out, want2), "%s", out);
    cr_expect_eq(count_lines(out), 2);
    cr_expect_not_null(strstr(err, "2 servers running"), "%s", err);
    free(out);
    out = run_stats(&st, "--json");
    cr_expect(json_parses(out), "%s", out);
    cr_expect_not_null(strstr(out, "\"instances\":["));
    free(out);
}

Test(cli_stats, a_stale_socket_is_dropped)
{
    /* A pid that no longer exists, and a socket file left in its name. */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    struct proc echo;
    start_echo(&echo, NULL); /* makes the directory */
    char stale[256];
    snprintf(stale, sizeof stale, "%s/%d.sock", epdir, (int)dead);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(stale), sizeof sa.sun_path);
    memcpy(sa.sun_path, stale, strlen(stale) + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd); /* bound, never listened, never removed: like a killed server */

    int st;
    char *json = run_stats(&st, "--json");
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "pid"), echo.pid, "the live one answers: %s", json);
    struct stat sb;
    cr_expect_neq(lstat(stale, &sb), 0, "the stale socket is gone");
    free(json);
}

Test(cli_stats, a_tcp_endpoint_only_when_asked)
{
    struct proc echo;
    start_echo(&echo, "-v", "--stats", "tcp:127.0.0.1:0", NULL);
    const char *line = NULL;
    uint64_t end = tn_now_ms() + 5000;
    while (!(line = strstr(echo.errbuf, "stats endpoint tcp ")) && tn_now_ms() < end)
        proc_pump_err(&echo, 50);
    cr_assert_not_null(line, "%s", echo.errbuf);
    char host[64];
    unsigned port;
    cr_assert_eq(sscanf(line, "stats endpoint tcp %63s %u", host, &port), 2);
    cr_expect_str_eq(host, "127.0.0.1");
    char spec[64];
    snprintf(spec, sizeof spec, "tcp:127.0.0.1:%u", port);
    int st;
    char *json = run_stats(&st, "--json", spec);
    cr_expect_eq(st, 0);
    cr_expect_eq(stats_json_number(json, "pid"), echo.pid, "%s", json);
    free(json);
    /* No Unix-domain endpoint besides. */
    struct stat sb;
    cr_expect_neq(lstat(default_path(&echo), &sb), 0);
}

Test(cli_stats, no_stats_means_no_endpoint)
{
    struct proc echo;
    start_echo(&echo, "--no-stats", NULL);
    struct stat sb;
    cr_expect_neq(lstat(default_path(&echo), &sb), 0);
    int st;
    char *out = run_stats(&st, "--json");
    cr_expect_eq(st, 1);
    free(out);
}

Test(cli_stats, an_endpoint_in_use_stops_the_second_server)
{
    char path[192];
    snprintf(path, sizeof path, "%s/taken.sock", tmpdir);
    struct proc e1, e2;
    start_echo(&e1, "--stats", path, NULL);
    cr_assert(proc_start(&e2, -1, "echo", "--stats", path, "127.0.0.1:0", NULL));
    cr_expect_eq(proc_wait(&e2, 10000), 1);
    cr_expect_not_null(strstr(e2.errbuf, "iocptool: stats endpoint: "), "%s", e2.errbuf);
    cr_expect_not_null(strstr(e2.errbuf, "in use"), "%s", e2.errbuf);
    /* The first one is untouched. */
    int st;
    char *json = run_stats(&st, "--json", path);
    cr_expect_eq(stats_json_number(json, "pid"), e1.pid, "%s", json);
    free(json);
}

Test(cli_stats, watch_repeats_until_interrupted)
{
    struct proc echo;
    start_echo(&echo, NULL);
    struct proc w;
    cr_assert(
        proc_start(&w, -1, "stats", "--watch", "0.2", "--json", (char *)default_path(&echo), NULL));
    /* Not a terminal: plain repeated reports, one JSON object a line. */
    char buf[65536];
    size_t got = 0;
    uint64_t end = tn_now_ms() + 5000;
    while (tn_now_ms() < end) {
        struct pollfd pfd = {.fd = w.out, .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = read(w.out, buf + got, sizeof buf - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            if (count_lines(buf) >= 3)
                break;
        }
    }
    cr_expect_geq(count_lines(buf), 3, "%s", buf);
    cr_expect_null(strstr(buf, "\033["), "no terminal escapes into a pipe");
    cr_expect(json_parses(buf));
    cr_expect_eq(proc_signal(&w, SIGINT, 5000), 0, "an interrupt ends it with status 0");
}

Test(cli_stats, conflicting_options_are_a_usage_error)
{
    int st;
    char err[512];
    char *out = run_stats_err(&st, err, "--json", "--prometheus");
    cr_expect_eq(st, 2);
    cr_expect_not_null(strstr(err, "iocptool: stats: --json and --prometheus exclude each other"),
                       "%s", err);
    free(out);
    out = run_stats_err(&st, err, "--watch", "-1");
    cr_expect_eq(st, 2);
    free(out);
}
