/* SPDX-License-Identifier: MIT */
/*
 * The proxy protocols' client side as pure functions (lib/src/proxy_wire.h):
 * the bytes of each request, each reply parsed whole, byte by byte and
 * truncated, every reply code turned into its error and sentence, and the
 * bounds: 255-byte names and credentials, an HTTP header that never ends.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "iocp.h"
#include "proxy_wire.h"

static char why[IOCP_PROXY_WHY_MAX];

/* Every proper prefix of a complete message asks for more. */
static void prefixes_need_more(int (*parse)(const uint8_t *, size_t, char *, size_t),
                               const uint8_t *msg, size_t len)
{
    for (size_t i = 0; i < len; i++)
        cr_expect_eq(parse(msg, i, why, sizeof why), 0, "prefix of %zu bytes", i);
    cr_expect_eq(parse(msg, len, why, sizeof why), (int)len);
}

Test(proxy_parse, socks5_hello_offers_a_password_only_with_credentials)
{
    uint8_t out[4];
    cr_expect_eq(iocp__socks5_hello(out, false), 3);
    cr_expect(memcmp(out, "\x05\x01\x00", 3) == 0);
    cr_expect_eq(iocp__socks5_hello(out, true), 4);
    cr_expect(memcmp(out, "\x05\x02\x00\x02", 4) == 0);
}

Test(proxy_parse, socks5_method_choice)
{
    int method = -1;
    const uint8_t ok[] = {5, 0}, pw[] = {5, 2}, none[] = {5, 0xff}, v4[] = {4, 0};
    cr_expect_eq(iocp__socks5_parse_choice(ok, 1, false, &method, why, sizeof why), 0);
    cr_expect_eq(iocp__socks5_parse_choice(ok, 2, false, &method, why, sizeof why), 2);
    cr_expect_eq(method, 0);
    cr_expect_eq(iocp__socks5_parse_choice(pw, 2, true, &method, why, sizeof why), 2);
    cr_expect_eq(method, 2);
    cr_expect_eq(iocp__socks5_parse_choice(pw, 2, false, &method, why, sizeof why), IOCP_EPROTO);
    cr_expect_eq(iocp__socks5_parse_choice(none, 2, false, &method, why, sizeof why), IOCP_EAUTH);
    cr_expect_str_eq(why, "SOCKS5: the proxy requires authentication");
    cr_expect_eq(iocp__socks5_parse_choice(v4, 1, false, &method, why, sizeof why), IOCP_EPROTO);
}

Test(proxy_parse, socks5_credentials_of_the_maximum_length)
{
    char user[256], pass[256];
    memset(user, 'u', 255);
    memset(pass, 'p', 255);
    user[255] = pass[255] = '\0';
    uint8_t out[3 + 2 * 255];
    cr_expect_eq(iocp__socks5_auth(out, sizeof out, user, pass), 3 + 2 * 255);
    cr_expect_eq(out[0], 1);
    cr_expect_eq(out[1], 255);
    cr_expect_eq(out[2 + 255], 255);
    char longer[257];
    memset(longer, 'x', 256);
    longer[256] = '\0';
    cr_expect_eq(iocp__socks5_auth(out, sizeof out, longer, "p"), IOCP_EINVAL);
    cr_expect_eq(iocp__socks5_auth(out, sizeof out, user, longer), IOCP_EINVAL);
    cr_expect_eq(iocp__socks5_auth(out, sizeof out, "", "p"), IOCP_EINVAL);
    const uint8_t yes[] = {1, 0}, no[] = {1, 1};
    cr_expect_eq(iocp__socks5_parse_auth(yes, 2, why, sizeof why), 2);
    cr_expect_eq(iocp__socks5_parse_auth(no, 1, why, sizeof why), 0);
    cr_expect_eq(iocp__socks5_parse_auth(no, 2, why, sizeof why), IOCP_EAUTH);
    cr_expect_str_eq(why, "SOCKS5: the proxy refused the user name or password");
}

Test(proxy_parse, socks5_requests_for_ipv4_ipv6_and_a_255_byte_name)
{
    uint8_t out[IOCP_PROXY_REQUEST_MAX];
    struct iocp__proxy_target t = {.ip = {127, 0, 0, 1}, .ip_len = 4, .port = 0x1f90};
    cr_expect_eq(iocp__socks5_connect(out, sizeof out, &t), 10);
    cr_expect(memcmp(out, "\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90", 10) == 0);
    struct iocp__proxy_target t6 = {.ip_len = 16, .port = 22};
    t6.ip[15] = 1;
    cr_expect_eq(iocp__socks5_connect(out, sizeof out, &t6), 22);
    cr_expect_eq(out[3], 4);
    char name[257];
    memset(name, 'a', 255);
    name[255] = '\0';
    struct iocp__proxy_target tn = {.name = name, .port = 443};
    cr_expect_eq(iocp__socks5_connect(out, sizeof out, &tn), 4 + 1 + 255 + 2);
    cr_expect_eq(out[3], 3);
    cr_expect_eq(out[4], 255);
    name[255] = 'a';
    name[256] = '\0';
    cr_expect_eq(iocp__socks5_connect(out, sizeof out, &tn), IOCP_EINVAL);
}

static int socks5_reply(const uint8_t *in, size_t len, char *w, size_t wl)
{
    return iocp__socks5_parse_reply(in, len, w, wl);
}

Test(proxy_parse, socks5_replies_of_each_address_type_need_every_byte)
{
    const uint8_t v4[] = {5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38};
    prefixes_need_more(socks5_reply, v4, sizeof v4);
    uint8_t v6[22] = {5, 0, 0, 4};
    prefixes_need_more(socks5_reply, v6, sizeof v6);
    uint8_t named[4 + 1 + 255 + 2] = {5, 0, 0, 3, 255};
    prefixes_need_more(socks5_reply, named, sizeof named);
    const uint8_t badtype[] = {5, 0, 0, 9, 0, 0};
    cr_expect_eq(socks5_reply(badtype, sizeof badtype, why, sizeof why), IOCP_EPROTO);
}

Test(proxy_parse, socks5_reply_codes_become_errors_with_sentences)
{
    static const struct {
        uint8_t code;
        int err;
        const char *why;
    } cases[] = {
        {1, IOCP_ECONNREFUSED, "SOCKS5: general failure of the proxy"},
        {2, IOCP_EACCES, "SOCKS5: connection not allowed by the proxy's rules"},
        {3, IOCP_ENETUNREACH, "SOCKS5: network unreachable from the proxy"},
        {4, IOCP_EHOSTUNREACH, "SOCKS5: host unreachable from the proxy"},
        {5, IOCP_ECONNREFUSED, "SOCKS5: connection refused by the proxy's target"},
        {6, IOCP_ETIMEDOUT, "SOCKS5: TTL expired at the proxy"},
        {7, IOCP_ENOTSUP, "SOCKS5: the proxy does not support CONNECT"},
        {8, IOCP_EAFNOSUPPORT, "SOCKS5: the proxy does not support this address type"},
        {42, IOCP_EPROTO, "SOCKS5: unknown reply code 42 from the proxy"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t reply[] = {5, cases[i].code};
        cr_expect_eq(socks5_reply(reply, 2, why, sizeof why), cases[i].err, "code %u",
                     cases[i].code);
        cr_expect_str_eq(why, cases[i].why);
    }
}

Test(proxy_parse, socks4_and_socks4a_requests_and_replies)
{
    uint8_t out[IOCP_PROXY_REQUEST_MAX];
    struct iocp__proxy_target t = {.ip = {10, 1, 2, 3}, .ip_len = 4, .port = 80};
    cr_expect_eq(iocp__socks4_connect(out, sizeof out, &t, "bob", false), 8 + 4);
    cr_expect(memcmp(out, "\x04\x01\x00\x50\x0a\x01\x02\x03" "bob\0", 12) == 0);
    struct iocp__proxy_target tn = {.name = "example.org", .port = 80};
    cr_expect_eq(iocp__socks4_connect(out, sizeof out, &tn, NULL, false), IOCP_EINVAL);
    cr_expect_eq(iocp__socks4_connect(out, sizeof out, &tn, NULL, true), 8 + 1 + 12);
    cr_expect(memcmp(out + 4, "\x00\x00\x00\x01\x00" "example.org\0", 17) == 0);
    struct iocp__proxy_target t6 = {.ip_len = 16, .port = 80};
    cr_expect_eq(iocp__socks4_connect(out, sizeof out, &t6, NULL, true), IOCP_EINVAL);

    const uint8_t granted[] = {0, 90, 0, 80, 10, 1, 2, 3};
    for (size_t i = 0; i < sizeof granted; i++)
        cr_expect_eq(iocp__socks4_parse_reply(granted, i, why, sizeof why), 0);
    cr_expect_eq(iocp__socks4_parse_reply(granted, 8, why, sizeof why), 8);
    const uint8_t rejected[] = {0, 91}, identd[] = {0, 92}, weird[] = {7, 90};
    cr_expect_eq(iocp__socks4_parse_reply(rejected, 2, why, sizeof why), IOCP_ECONNREFUSED);
    cr_expect(strstr(why, "SOCKS4: request rejected or failed"));
    cr_expect_eq(iocp__socks4_parse_reply(identd, 2, why, sizeof why), IOCP_EAUTH);
    cr_expect_eq(iocp__socks4_parse_reply(weird, 1, why, sizeof why), IOCP_EPROTO);
}

Test(proxy_parse, http_connect_request_with_basic_auth)
{
    char out[IOCP_PROXY_REQUEST_MAX];
    struct iocp__proxy_target t = {.name = "example.org", .port = 443};
    int n = iocp__http_connect(out, sizeof out, &t, "Aladdin", "open sesame");
    cr_assert_gt(n, 0);
    cr_expect_str_eq(out, "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n"
                          "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
    struct iocp__proxy_target t6 = {.name = "::1", .port = 22};
    cr_assert_gt(iocp__http_connect(out, sizeof out, &t6, NULL, NULL), 0);
    cr_expect_str_eq(out, "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n");
    struct iocp__proxy_target evil = {.name = "a\r\nX-Evil: 1", .port = 1};
    cr_expect_eq(iocp__http_connect(out, sizeof out, &evil, NULL, NULL), IOCP_EINVAL);
    /* Credentials of the maximum length still fit the request buffer. */
    char user[256], pass[256], name[256];
    memset(user, 'u', 255);
    memset(pass, 'p', 255);
    memset(name, 'n', 255);
    user[255] = pass[255] = name[255] = '\0';
    struct iocp__proxy_target tl = {.name = name, .port = 65535};
    cr_expect_gt(iocp__http_connect(out, sizeof out, &tl, user, pass), 0);
}

static int http_reply(const uint8_t *in, size_t len, char *w, size_t wl)
{
    return iocp__http_parse_reply(in, len, w, wl);
}

Test(proxy_parse, http_responses)
{
    const char ok[] = "HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n";
    prefixes_need_more(http_reply, (const uint8_t *)ok, sizeof ok - 1);
    const char bare[] = "HTTP/1.0 200 OK\n\n";
    cr_expect_eq(http_reply((const uint8_t *)bare, sizeof bare - 1, why, sizeof why),
                 (int)sizeof bare - 1);
    const char auth[] = "HTTP/1.1 407 Proxy Authentication Required\r\n";
    cr_expect_eq(http_reply((const uint8_t *)auth, sizeof auth - 1, why, sizeof why), IOCP_EAUTH);
    cr_expect_str_eq(why, "HTTP 407 Proxy Authentication Required");
    const char gw[] = "HTTP/1.1 502 Bad Gateway\r\n";
    cr_expect_eq(http_reply((const uint8_t *)gw, sizeof gw - 1, why, sizeof why),
                 IOCP_ECONNREFUSED);
    cr_expect_str_eq(why, "HTTP 502 Bad Gateway");
    const char forbidden[] = "HTTP/1.1 403 Forbidden\r\n";
    cr_expect_eq(http_reply((const uint8_t *)forbidden, sizeof forbidden - 1, why, sizeof why),
                 IOCP_EACCES);
    const char junk[] = "SSH-2.0-x\r\n";
    cr_expect_eq(http_reply((const uint8_t *)junk, 3, why, sizeof why), IOCP_EPROTO);
    const char nostatus[] = "HTTP/1.1 2x0 OK\r\n\r\n";
    cr_expect_eq(http_reply((const uint8_t *)nostatus, sizeof nostatus - 1, why, sizeof why),
                 IOCP_EPROTO);
}

Test(proxy_parse, an_http_header_of_64_kib_is_refused_at_the_bound)
{
    size_t len = 64 * 1024;
    uint8_t *big = malloc(len);
    memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
    memset(big + 17, 'x', len - 17);
    cr_expect_eq(http_reply(big, IOCP_PROXY_REPLY_MAX - 1, why, sizeof why), 0);
    cr_expect_eq(http_reply(big, IOCP_PROXY_REPLY_MAX, why, sizeof why), IOCP_EMSGSIZE);
    cr_expect(strstr(why, "longer than 16384 bytes"));
    cr_expect_eq(http_reply(big, len, why, sizeof why), IOCP_EMSGSIZE);
    free(big);
}

Test(proxy_parse, base64_pads_like_rfc_4648)
{
    char out[16];
    static const char *const want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                       "Zm9vYmFy"};
    for (size_t i = 0; i <= 6; i++) {
        cr_expect_eq(iocp__base64((const uint8_t *)"foobar", i, out), strlen(want[i]));
        cr_expect_str_eq(out, want[i]);
    }
}
