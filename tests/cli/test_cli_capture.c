/* SPDX-License-Identifier: MIT */
/*
 * -x and --pcap, as a user checks them: a relayed HTTP exchange (curl
 * against a small HTTP responder) read back with tshark shows the request
 * and the response on one TCP stream per leg with the right ports and no
 * sequence gap; the hex dump of a relayed bulk transfer each way (which the
 * relay would otherwise splice) and of listen's bridged connection gives
 * back exactly the bytes that passed, per connection and direction.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "nc_support.h"
#include "relay_ops_support.h"

static char tmpdir[64];

static void cap_init(void)
{
    nc_dir_init(tmpdir, sizeof tmpdir, "capture");
}

static void cap_fini(void)
{
    nc_dir_fini(tmpdir);
}

TestSuite(cli_capture, .init = cap_init, .fini = cap_fini, .timeout = 120);

/* ---- helpers ---- */

static uint16_t start_relay(struct proc *p, uint16_t target, const char *opt, const char *file)
{
    char tgt[32];
    snprintf(tgt, sizeof tgt, "127.0.0.1:%u", target);
    cr_assert(proc_start(p, -1, "relay", "-W", "2", "--no-stats", opt, file, "127.0.0.1:0", tgt,
                         NULL));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* Run a program to its end; its stdout (malloc'd) and exit status. */
static char *run_program(char *const argv[], int *status)
{
    struct proc p;
    cr_assert(nc_spawn(&p, -1, argv), "cannot start %s", argv[0]);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap + 1);
    uint64_t end = tn_now_ms() + 60000;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = p.out, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        if (len == cap)
            out = realloc(out, (cap *= 2) + 1);
        ssize_t n = read(p.out, out + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    *status = proc_wait(&p, 30000);
    return out;
}

/* The HTTP responder: one request, one response, then the close. */
#define BODY "captured body\n"
struct responder {
    int lfd;
    uint16_t port;
    pthread_t thread;
    bool served;
};

static void *respond(void *arg)
{
    struct responder *r = arg;
    struct pollfd pfd = {.fd = r->lfd, .events = POLLIN};
    if (poll(&pfd, 1, 30000) <= 0)
        return NULL;
    int fd = accept(r->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        size_t n = tn_read_full(fd, req + got, 1, 10000);
        if (n == 0)
            break;
        got += n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                               "14\r\nConnection: close\r\n\r\n" BODY;
    r->served = tn_write_all(fd, resp, sizeof resp - 1);
    shutdown(fd, SHUT_WR);
    tn_wait_eof(fd, 10000);
    close(fd);
    return NULL;
}

/* tshark -r file FIELDS...: its lines (malloc'd). */
static char *tshark(const char *file, const char *filter, const char *fields)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tshark -n -r '%s' -Y '%s' -T fields %s", file, filter, fields);
    char *argv[] = {"sh", "-c", cmd, NULL};
    int status;
    char *out = run_program(argv, &status);
    cr_assert_eq(status, 0, "tshark failed (is it installed? bash .ci/deps): %s", cmd);
    return out;
}

/* ---- pcap ---- */

Test(cli_capture, pcap_of_a_relayed_http_exchange_reads_back_in_tshark)
{
    char pcap[128], url[64];
    snprintf(pcap, sizeof pcap, "%s/http.pcapng", tmpdir);
    struct responder r = {0};
    r.lfd = tn_listen(&r.port);
    cr_assert_geq(r.lfd, 0);
    pthread_create(&r.thread, NULL, respond, &r);
    struct proc relay;
    uint16_t port = start_relay(&relay, r.port, "--pcap", pcap);

    snprintf(url, sizeof url, "http://127.0.0.1:%u/probe", port);
    char *argv[] = {"curl", "-s", "--max-time", "20", url, NULL};
    int status;
    char *body = run_program(argv, &status);
    cr_expect_eq(status, 0, "curl's status");
    cr_expect_str_eq(body, BODY);
    free(body);
    pthread_join(r.thread, NULL);
    close(r.lfd);
    cr_assert(r.served);
    /* The file is complete once the relay has stopped. */
    cr_assert_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);

    /* Every frame: stream, ports, SYN/FIN/ACK, the HTTP request's URI and
     * the response's code. */
    char *frames = tshark(pcap, "frame",
                          "-e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.flags.syn "
                          "-e tcp.flags.fin -e tcp.flags.ack -e http.request.uri "
                          "-e http.response.code");
    int syns[4] = {0}, fins[4] = {0}, nframes = 0;
    int req_stream[2] = {-1, -1}, resp_stream[2] = {-1, -1};
    for (char *line = frames, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        /* Tab-separated, empty fields kept. */
        char *field[8] = {0};
        int k = 0;
        for (char *f = line; k < 8; k++) {
            field[k] = f;
            char *tab = strchr(f, '\t');
            if (!tab) {
                k++;
                break;
            }
            *tab = '\0';
            f = tab + 1;
        }
        cr_assert_geq(k, 6, "frame: %s", line);
        unsigned stream = (unsigned)atoi(field[0]), sport = (unsigned)atoi(field[1]),
                 dport = (unsigned)atoi(field[2]);
        bool syn = atoi(field[3]), fin = atoi(field[4]), ack = atoi(field[5]);
        const char *uri = k > 6 ? field[6] : "", *code = k > 7 ? field[7] : "";
        cr_assert_lt(stream, 4, "frame: %s", line);
        nframes++;
        syns[stream] += syn && !ack;
        fins[stream] += fin;
        if (!strcmp(uri, "/probe") && (dport == port || dport == r.port))
            req_stream[dport == port ? 0 : 1] = (int)stream;
        if (!strcmp(code, "200") && (sport == port || sport == r.port))
            resp_stream[sport == port ? 0 : 1] = (int)stream;
    }
    /* Two connections, each with its handshake and a FIN each way; the
     * client's request went to the relay's port and its response came
     * from it on the same stream; the same toward the responder's port
     * on the other stream. */
    cr_expect(nframes >= 16, "%d frames", nframes);
    cr_expect(syns[0] == 1 && syns[1] == 1 && fins[0] == 2 && fins[1] == 2,
              "SYNs %d %d, FINs %d %d", syns[0], syns[1], fins[0], fins[1]);
    cr_expect_geq(req_stream[0], 0, "no request to port %u", port);
    cr_expect_geq(req_stream[1], 0, "no request to port %u", r.port);
    cr_expect_eq(resp_stream[0], req_stream[0], "the response on the request's stream");
    cr_expect_eq(resp_stream[1], req_stream[1], "the response on the request's stream");
    cr_expect_neq(req_stream[0], req_stream[1]);
    free(frames);
    /* Sequence numbers as TCP has them: nothing tshark finds amiss (a
     * segment not captured, out of order, a retransmission). */
    char *odd = tshark(pcap, "tcp.analysis.flags && !tcp.analysis.window_update", "-e frame.number");
    cr_expect_str_eq(odd, "", "frames tshark finds amiss: %s", odd);
    free(odd);
}

/* ---- hex dump ---- */

/* The bytes of one connection and direction, put together from a dump;
 * false (and a log line) when an offset is not where the last line ended. */
struct dumped {
    unsigned long long id;
    char dir;
    unsigned char *bytes;
    size_t len, cap;
};

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_dump(const char *path, struct dumped *out, int max)
{
    size_t text_len;
    char *text = ro_slurp(path, &text_len);
    cr_assert_not_null(text, "no dump at %s", path);
    int n = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        /* memchr, not strchr: a checked build's strchr measures the
         * whole rest of the file at every line. */
        nl = memchr(line, '\n', (size_t)(text + text_len - line));
        cr_assert_not_null(nl);
        *nl = '\0';
        if (line[0] == '#')
            continue;
        unsigned long long id, off;
        char dir;
        int used;
        cr_assert_eq(sscanf(line, "%llu %c %llx %n", &id, &dir, &off, &used), 3, "line: %s", line);
        struct dumped *d = NULL;
        for (int i = 0; i < n; i++)
            if (out[i].id == id && out[i].dir == dir)
                d = &out[i];
        if (!d) {
            cr_assert_lt(n, max);
            d = &out[n++];
            *d = (struct dumped){.id = id, .dir = dir};
        }
        cr_assert_eq(off, d->len, "line %s: offset after %zu bytes", line, d->len);
        /* Up to 16 pairs of hex digits, then "|ASCII|" (parsed by hand:
         * a dump of megabytes has hundreds of thousands of lines). */
        const char *p = line + used;
        if (d->cap < d->len + 16) {
            d->cap = d->cap ? d->cap * 2 : 4096;
            d->bytes = realloc(d->bytes, d->cap);
        }
        for (int k = 0; k < 16; k++) {
            while (*p == ' ')
                p++;
            int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);
            if (lo < 0)
                break;
            d->bytes[d->len++] = (unsigned char)(hi << 4 | lo);
            p += 2;
        }
    }
    free(text);
    return n;
}

static const struct dumped *find_dump(const struct dumped *d, int n, unsigned long long id,
                                      char dir)
{
    for (int i = 0; i < n; i++)
        if (d[i].id == id && d[i].dir == dir)
            return &d[i];
    return NULL;
}

/* Enough for the relay to splice it if it could (a few 8 KiB reads in a
 * row); and the four directions' records fit in the dump's buffer even if
 * its writer thread got no CPU at all, so that nothing is dropped. */
#ifdef IOCP_TEST_SANITIZED
#define BULK (256u << 10)
#else
#define BULK (512u << 10)
#endif

Test(cli_capture, hex_dump_of_a_relayed_bulk_transfer_gives_the_bytes_back)
{
    char dump[128];
    snprintf(dump, sizeof dump, "%s/relay.hex", tmpdir);
    /* The target echoes what it gets. */
    struct proc echo;
    cr_assert(proc_start(&echo, -1, "echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL));
    uint16_t eport = proc_listening(&echo, 10000);
    cr_assert_neq(eport, 0);
    struct proc relay;
    uint16_t port = start_relay(&relay, eport, "-x", dump);

    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    unsigned char *out = malloc(BULK), *in = malloc(BULK);
    tn_pattern(out, BULK, 4242, 0);
    /* Send all, read all back (both at once: the echo answers as it gets). */
    tn_set_nonblock(fd, true);
    size_t sent = 0, got = 0;
    uint64_t end = tn_now_ms() + 60000;
    while (got < BULK && tn_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = (short)(POLLIN | (sent < BULK ? POLLOUT : 0))};
        if (poll(&pfd, 1, 1000) <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && sent < BULK) {
            ssize_t w = write(fd, out + sent, BULK - sent);
            if (w > 0 && (sent += (size_t)w) == BULK)
                shutdown(fd, SHUT_WR);
        }
        if (pfd.revents & POLLIN) {
            ssize_t k = read(fd, in + got, BULK - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
    }
    cr_assert_eq(got, BULK);
    cr_assert_eq(memcmp(in, out, BULK), 0);
    tn_set_nonblock(fd, false);
    cr_expect(tn_wait_eof(fd, 10000));
    close(fd);
    cr_assert_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);
    cr_expect_null(strstr(relay.errbuf, "Sanitizer"), "%s", relay.errbuf);

    /* Two connections (the client's leg, then the target's), each with
     * the transfer both ways. */
    struct dumped d[8];
    int n = parse_dump(dump, d, 8);
    cr_assert_eq(n, 4, "%d connection-directions in the dump", n);
    unsigned long long a = d[0].id, b = 0;
    for (int i = 0; i < n; i++)
        if (d[i].id != a)
            b = d[i].id;
    const struct dumped *from_client = find_dump(d, n, a, '<'), *to_client = find_dump(d, n, a, '>');
    const struct dumped *to_target = find_dump(d, n, b, '>'), *from_target = find_dump(d, n, b, '<');
    cr_assert(from_client && to_client && to_target && from_target);
    cr_expect(from_client->len == BULK && !memcmp(from_client->bytes, out, BULK),
              "from the client: %zu bytes", from_client->len);
    cr_expect(to_client->len == BULK && !memcmp(to_client->bytes, out, BULK),
              "to the client: %zu bytes", to_client->len);
    cr_expect(to_target->len == BULK && !memcmp(to_target->bytes, out, BULK),
              "to the target: %zu bytes", to_target->len);
    cr_expect(from_target->len == BULK && !memcmp(from_target->bytes, out, BULK),
              "from the target: %zu bytes", from_target->len);
    for (int i = 0; i < n; i++)
        free(d[i].bytes);
    free(out);
    free(in);
    proc_signal(&echo, SIGTERM, 10000);
}

Test(cli_capture, hex_dump_and_pcap_of_listen_bridged_connection)
{
    char dump[128], pcap[128], input[128];
    snprintf(dump, sizeof dump, "%s/listen.hex", tmpdir);
    snprintf(pcap, sizeof pcap, "%s/listen.pcapng", tmpdir);
    snprintf(input, sizeof input, "%s/input", tmpdir);
    /* What listen sends: a file on its stdin. */
    static const char to_peer[] = "from listen's stdin\n\x01\x02\xff binary too\n";
    FILE *f = fopen(input, "wb");
    cr_assert_not_null(f);
    fwrite(to_peer, 1, sizeof to_peer - 1, f);
    fclose(f);
    int in_fd = open(input, O_RDONLY | O_CLOEXEC);
    struct proc listen;
    cr_assert(proc_start(&listen, in_fd, "listen", "--no-stats", "--hex-dump", dump, "--pcap", pcap,
                         "127.0.0.1:0", NULL));
    close(in_fd);
    uint16_t port = proc_listening(&listen, 10000);
    cr_assert_neq(port, 0, "%s", listen.errbuf);

    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    static const char from_peer[] = "GET / HTTP/1.0\r\n\r\n";
    cr_assert(tn_write_all(fd, from_peer, sizeof from_peer - 1));
    shutdown(fd, SHUT_WR);
    char got[128];
    cr_assert_eq(tn_read_full(fd, got, sizeof to_peer - 1, 10000), sizeof to_peer - 1);
    cr_expect(tn_wait_eof(fd, 10000));
    close(fd);
    cr_assert_eq(proc_wait(&listen, 10000), 0, "%s", listen.errbuf);

    struct dumped d[4];
    int n = parse_dump(dump, d, 4);
    cr_assert_eq(n, 2);
    const struct dumped *in = find_dump(d, n, d[0].id, '<'), *out = find_dump(d, n, d[0].id, '>');
    cr_assert(in && out);
    cr_expect(in->len == sizeof from_peer - 1 && !memcmp(in->bytes, from_peer, in->len));
    cr_expect(out->len == sizeof to_peer - 1 && !memcmp(out->bytes, to_peer, out->len));
    free(d[0].bytes);
    free(d[1].bytes);

    /* The pcap: one stream, to listen's port, with both payloads. */
    char *segs = tshark(pcap, "tcp.len > 0", "-e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.len");
    char want[128];
    snprintf(want, sizeof want, "\t%u\t%zu\n", port, sizeof from_peer - 1);
    cr_expect(strstr(segs, want), "%s", segs);
    snprintf(want, sizeof want, "0\t%u\t", port);
    cr_expect(strstr(segs, want), "%s", segs);
    cr_expect_null(strstr(segs, "\n1\t"), "one stream: %s", segs);
    free(segs);
}
