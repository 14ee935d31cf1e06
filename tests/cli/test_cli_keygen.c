/* SPDX-License-Identifier: MIT */
/*
 * iocptool keygen and the key file rules of docs/PROTOCOL.md, through the
 * binary: the mode of a new key file, no overwrite without --force, a key
 * on stdout that loads, and every damaged or unprotected key file refused
 * with status 2 and a reason.
 */
#include <criterion/criterion.h>

#include <sys/stat.h>

#include "proc.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/iocp-keygen-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    proc_cleanup_all();
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(cli_keygen, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* Run iocptool with the arguments; its status, stdout in out (if given). */
static int run(char *out, size_t cap, struct proc *p, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    va_list ap;
    va_start(ap, p);
    char *a;
    while (n < 15 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(proc_startv(p, devnull, argv));
    close(devnull);
    char sink[512];
    size_t got = tn_read_full(p->out, out ? out : sink, (out ? cap : sizeof sink) - 1, 10000);
    (out ? out : sink)[got] = '\0';
    return proc_wait(p, 10000);
}

#if IOCP_HAVE_SODIUM

static char *path_of(const char *name)
{
    static char paths[4][128];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

/* A key line: the prefix, 48 base64 characters, a line feed. */
static void expect_key_line(const char *text)
{
    cr_assert_eq(strncmp(text, "iocptool-key-v1:", 16), 0, "not a key line: %s", text);
    cr_assert_eq(strlen(text), 16 + 48 + 1, "not a key line: %s", text);
    cr_assert_eq(text[64], '\n');
    for (int i = 16; i < 64; i++)
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                         text[i]) != NULL);
}

Test(cli_keygen, a_new_key_file_is_readable_by_its_owner_only)
{
    struct proc p;
    char *key = path_of("key");
    /* Even with a permissive umask the file must come out 0600. */
    mode_t old = umask(0);
    int status = run(NULL, 0, &p, "keygen", key, NULL);
    umask(old);
    cr_assert_eq(status, 0, "stderr: %s", p.errbuf);
    cr_expect_eq(p.errlen, 0, "keygen is quiet: %s", p.errbuf);
    struct stat st;
    cr_assert_eq(stat(key, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600, "mode %o", (unsigned)(st.st_mode & 07777));
    char text[256];
    read_file(key, text, sizeof text);
    expect_key_line(text);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", key, NULL), 0, "stderr: %s", p.errbuf);
}

Test(cli_keygen, an_existing_file_is_kept_unless_force)
{
    struct proc p;
    char *key = path_of("key");
    cr_assert_eq(run(NULL, 0, &p, "keygen", key, NULL), 0);
    char first[256], second[256];
    read_file(key, first, sizeof first);

    cr_expect_eq(run(NULL, 0, &p, "keygen", key, NULL), 2);
    cr_expect(strstr(p.errbuf, "already exists (--force replaces it)") != NULL, "stderr: %s",
              p.errbuf);
    read_file(key, second, sizeof second);
    cr_expect_str_eq(first, second, "the old key is untouched");

    /* --force replaces it, with a new key and the private mode, even when
     * the old file was open to others. */
    cr_assert_eq(chmod(key, 0644), 0);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--force", key, NULL), 0, "stderr: %s", p.errbuf);
    read_file(key, second, sizeof second);
    expect_key_line(second);
    cr_expect_str_neq(first, second, "a new key");
    struct stat st;
    cr_assert_eq(stat(key, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600);
}

Test(cli_keygen, a_symbolic_link_is_never_written_through)
{
    struct proc p;
    char *target = path_of("elsewhere");
    char *link = path_of("link");
    cr_assert_eq(symlink(target, link), 0);
    cr_expect_eq(run(NULL, 0, &p, "keygen", link, NULL), 2, "stderr: %s", p.errbuf);
    struct stat st;
    cr_expect_neq(stat(target, &st), 0, "nothing was created through the link");
}

Test(cli_keygen, a_key_on_stdout_loads_and_two_keys_differ)
{
    struct proc p;
    char a[256], b[256];
    cr_assert_eq(run(a, sizeof a, &p, "keygen", NULL), 0, "stderr: %s", p.errbuf);
    cr_expect_eq(p.errlen, 0, "stdout carries the key, stderr nothing: %s", p.errbuf);
    expect_key_line(a);
    cr_assert_eq(run(b, sizeof b, &p, "keygen", NULL), 0);
    cr_expect_str_neq(a, b);

    char *key = path_of("from-stdout");
    write_file(key, a, 0600);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", key, NULL), 0, "stderr: %s", p.errbuf);
    /* A file saved by a Windows editor (CR LF) loads too. */
    a[64] = '\r';
    a[65] = '\n';
    a[66] = '\0';
    write_file(key, a, 0600);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", key, NULL), 0, "stderr: %s", p.errbuf);
}

/* Write text as a private key file and expect --check to refuse it with
 * status 2 and why in its message. */
static void expect_refused(const char *text, mode_t mode, const char *why)
{
    struct proc p;
    char *key = path_of("bad");
    unlink(key);
    write_file(key, text, mode);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", key, NULL), 2, "accepted: %s", text);
    cr_expect(strstr(p.errbuf, why) != NULL, "stderr: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, key) != NULL, "the message names the file: %s", p.errbuf);
}

Test(cli_keygen, a_damaged_or_truncated_key_file_is_refused)
{
    struct proc p;
    char good[256];
    cr_assert_eq(run(good, sizeof good, &p, "keygen", NULL), 0);
    char text[256];

    /* Every single-character change of the key is caught by the check or
     * the alphabet. */
    for (int i = 16; i < 64; i++) {
        strcpy(text, good);
        text[i] = text[i] == 'A' ? 'B' : 'A';
        expect_refused(text, 0600, "damaged key file");
    }
    for (size_t keep = 16; keep < 64; keep += 7) {
        memcpy(text, good, keep);
        text[keep] = '\0';
        expect_refused(text, 0600, "truncated key file");
    }
    snprintf(text, sizeof text, "%.64s%s", good, "AAAA\n");
    expect_refused(text, 0600, "extra characters");
    snprintf(text, sizeof text, "%.64s\n%.64s\n", good, good);
    expect_refused(text, 0600, "extra characters");
    strcpy(text, good);
    text[20] = '*';
    expect_refused(text, 0600, "outside the base64 alphabet");
    expect_refused("", 0600, "not an iocptool key file");
    expect_refused("hunter2\n", 0600, "not an iocptool key file");
    snprintf(text, sizeof text, "iocptool-key-v2:%s", good + 16);
    expect_refused(text, 0600, "not an iocptool key file");
}

Test(cli_keygen, a_key_file_open_to_group_or_others_is_refused)
{
    struct proc p;
    char good[256];
    cr_assert_eq(run(good, sizeof good, &p, "keygen", NULL), 0);
    static const mode_t modes[] = {0640, 0604, 0620, 0602, 0660, 0644, 0666};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        expect_refused(good, modes[i], "accessible by group or others");
    expect_refused(good, 0644, "chmod 600");
    /* Owner-only modes narrower than 0600 are fine. */
    char *key = path_of("ro");
    write_file(key, good, 0400);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", key, NULL), 0, "stderr: %s", p.errbuf);
}

Test(cli_keygen, a_missing_file_or_a_directory_is_refused)
{
    struct proc p;
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", path_of("absent"), NULL), 2);
    cr_expect(strstr(p.errbuf, "No such file") != NULL, "stderr: %s", p.errbuf);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", dir, NULL), 2);
    cr_expect(strstr(p.errbuf, "not a regular file") != NULL, "stderr: %s", p.errbuf);
    char big[1024];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_refused(big, 0600, "too large to be a key file");
}

Test(cli_keygen, version_says_encryption_is_in)
{
    struct proc p;
    char out[512];
    cr_assert_eq(run(out, sizeof out, &p, "--version", NULL), 0);
    cr_expect(strstr(out, "encryption: libsodium ") != NULL, "stdout: %s", out);
}

#else /* !IOCP_HAVE_SODIUM */

Test(cli_keygen, without_libsodium_keygen_says_so_with_status_2)
{
    struct proc p;
    cr_expect_eq(run(NULL, 0, &p, "keygen", NULL), 2);
    cr_expect(strstr(p.errbuf, "encryption is not built into this iocptool") != NULL, "stderr: %s",
              p.errbuf);
    char out[512];
    cr_assert_eq(run(out, sizeof out, &p, "--version", NULL), 0);
    cr_expect(strstr(out, "encryption: not built") != NULL, "stdout: %s", out);
}

#endif

Test(cli_keygen, usage_errors_have_status_2)
{
    struct proc p;
    cr_expect_eq(run(NULL, 0, &p, "keygen", "a", "b", NULL), 2);
    cr_expect(strstr(p.errbuf, "one FILE at most") != NULL, "stderr: %s", p.errbuf);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--check", NULL), 2);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--force", NULL), 2);
    cr_expect_eq(run(NULL, 0, &p, "keygen", "--bogus", NULL), 2);
    char out[4096];
    cr_expect_eq(run(out, sizeof out, &p, "keygen", "--help", NULL), 0);
    cr_expect(strstr(out, "usage: iocptool keygen") != NULL);
}
