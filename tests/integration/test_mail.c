/* test_mail.c: ns_mail_send against the real SMTP server of tests/stack.sh
 * (aiosmtpd, tests/fakes/smtp_sink.py). Each sent message is read back from
 * NS_SMTP_MAILDIR by tests/integration/mail_check.py (Python's email
 * package) and judged here. Exits 77 (skipped) when NS_SMTP_URL is unset. */
#include "nstest.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <strings.h>
#include <sys/socket.h>

#include "ns/buf.h"
#include "ns/mail.h"

#define FROM "Nightshift Reports <reports@nightshift.test>"

static ns_mail_server_t stack_server(void)
{
    ns_mail_server_t srv = {
        .url = getenv("NS_SMTP_URL"),
        .user = getenv("NS_SMTP_USER"),
        .password = getenv("NS_SMTP_PASSWORD"),
        .starttls = NS_MAIL_TLS_NONE,
        .timeout_ms = 20000,
    };
    return srv;
}

/* A recipient address of this process and test only: the checker finds
 * the stored message by it. */
static const char *rcpt(const char *who)
{
    static char buf[8][128];
    static int next;
    char *out = buf[next++ % 8];
    snprintf(out, sizeof(buf[0]), "%s-%ld@example.test", who, (long)getpid());
    return out;
}

static const char *checker_path(void)
{
    static char path[PATH_MAX];
    const char *src = getenv("NS_SRC");
    if (src != NULL && src[0] != '\0') {
        snprintf(path, sizeof(path), "%s/tests/integration/mail_check.py", src);
    } else { /* CMake compiles with absolute source paths */
        const char *slash = strrchr(__FILE__, '/');
        snprintf(path, sizeof(path), "%.*s/mail_check.py",
                 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
    }
    return path;
}

/* Runs mail_check.py for the message sent to token; returns its JSON. */
static cJSON *stored(const char *token)
{
    char cmd[PATH_MAX * 2 + 256];
    const char *py =
        access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, sizeof(cmd), "%s '%s' '%s' '%s'", py, checker_path(),
             getenv("NS_SMTP_MAILDIR"), token);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        NSTEST_FAIL("popen %s failed", cmd);
    ns_buf_t out;
    ns_buf_init(&out, (size_t)64 << 20);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        ns_buf_add(&out, chunk, n);
    int status = pclose(p);
    if (status != 0)
        NSTEST_FAIL("%s: exit status %d", cmd, status);
    cJSON *json = cJSON_Parse(out.data ? out.data : "");
    if (json == NULL)
        NSTEST_FAIL("mail_check output is not JSON: %s", out.data);
    ns_buf_free(&out);
    return json;
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(item))
        NSTEST_FAIL("\"%s\" is not a string in the stored message", key);
    return item->valuestring;
}

static long num(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item) && !cJSON_IsBool(item))
        NSTEST_FAIL("\"%s\" is not a number in the stored message", key);
    return cJSON_IsBool(item) ? cJSON_IsTrue(item) : (long)item->valuedouble;
}

static int count_in(const cJSON *array, const char *value)
{
    int hits = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, array)
    {
        if (cJSON_IsString(item) && strcasecmp(item->valuestring, value) == 0)
            hits++;
    }
    return hits;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        NSTEST_FAIL("no \"%s\" in the stored message", key);
    return item;
}

/* Every message: the standard headers exactly once, no parse defects, no
 * line over 998 bytes, CRLF line ends only. */
static void assert_well_formed(const cJSON *msg)
{
    static const char *const once[] = {
        "Date",    "Message-ID",   "From",        "To",
        "Subject", "MIME-Version", "Content-Type"};
    const cJSON *names = get(msg, "header_names");
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
        if (count_in(names, once[i]) != 1)
            NSTEST_FAIL("header %s appears %d times", once[i],
                        count_in(names, once[i]));
    ASSERT_EQ(count_in(names, "Bcc"), 0);
    ASSERT_EQ(count_in(names, "Cc"), 0);
    ASSERT_EQ(cJSON_GetArraySize(get(msg, "defects")), 0);
    ASSERT(num(msg, "max_line") <= 998);
    ASSERT_EQ(num(msg, "bare_lf"), 0);
    ASSERT_EQ(num(msg, "date_ok"), 1);
    ASSERT_STREQ(str(msg, "content_type"), "multipart/mixed");
    const char *mid = str(msg, "message_id");
    ASSERT(mid[0] == '<' && strstr(mid, "@nightshift.test>") != NULL);
}

static ns_err_t send_mail(const ns_mail_server_t *srv, const ns_mail_t *m,
                          ns_error_t *err)
{
    ns_error_clear(err);
    ns_err_t rc = ns_mail_send(srv, m, err);
    if (srv->password != NULL && strlen(srv->password) >= 4 &&
        strstr(err->msg, srv->password) != NULL)
        NSTEST_FAIL("the password appears in the error: %s", err->msg);
    return rc;
}

static void send_ok(const ns_mail_server_t *srv, const ns_mail_t *m)
{
    ns_error_t err;
    ns_err_t rc = send_mail(srv, m, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("ns_mail_send: %s: %s", ns_err2str(rc), err.msg);
}

static int stored_count(void)
{
    DIR *d = opendir(getenv("NS_SMTP_MAILDIR"));
    if (d == NULL)
        NSTEST_FAIL("cannot open NS_SMTP_MAILDIR");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".eml") != NULL;
    closedir(d);
    return n;
}

TEST(plain_ascii_two_recipients)
{
    ns_mail_server_t srv = stack_server();
    const char *a = rcpt("plain-a"), *b = rcpt("plain-b");
    char b_named[200];
    snprintf(b_named, sizeof(b_named), "Bea Person <%s>", b);
    const char *to[] = {a, b_named, NULL};
    /* Lines starting with "." must survive SMTP's dot-stuffing. */
    const char *text = "Hourly report.\n\n.\n.. two dots\nlast line\n";
    ns_mail_t m = {.from = FROM,
                   .to = to,
                   .subject = "Hourly report 2025-01-01 10:00",
                   .text = text};
    send_ok(&srv, &m);

    cJSON *msg = stored(a);
    assert_well_formed(msg);
    const cJSON *env = get(msg, "envelope");
    ASSERT_STREQ(str(env, "mail_from"), "reports@nightshift.test");
    ASSERT_EQ(cJSON_GetArraySize(get(env, "rcpt_tos")), 2);
    ASSERT_EQ(count_in(get(env, "rcpt_tos"), a), 1);
    ASSERT_EQ(count_in(get(env, "rcpt_tos"), b), 1);
    ASSERT_STREQ(str(env, "auth_user"), srv.user);
    ASSERT_EQ(count_in(get(msg, "to_addresses"), a), 1);
    ASSERT_EQ(count_in(get(msg, "to_addresses"), b), 1);
    ASSERT_STREQ(str(msg, "from"),
                 "Nightshift Reports <reports@nightshift.test>");
    ASSERT_STREQ(str(msg, "subject"), "Hourly report 2025-01-01 10:00");
    ASSERT_STREQ(str(msg, "body"), text);
    ASSERT_STREQ(str(msg, "body_charset"), "utf-8");
    ASSERT_EQ(cJSON_GetArraySize(get(msg, "attachments")), 0);
    cJSON_Delete(msg);
}

TEST(utf8_subject_and_body)
{
    ns_mail_server_t srv = stack_server();
    const char *to[] = {rcpt("utf8"), NULL};
    /* Long enough for several encoded words; emoji on word boundaries. */
    const char *subject = "Отчёт за час 🚀📊 — שלום עולם ✓ مرحبا "
                          "ещё немного кириллицы "
                          "🙂🙂🙂🙂🙂🙂🙂🙂 the end";
    const char *text = "Привет! Отчёт готов 📈\nעברית מימין לשמאל\n"
                       "=?UTF-8?B?not-a-word?= stays text\n"
                       "a line of 100 characters: "
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                       "xxxxxxxxxxxxxxxxxxxxx\n";
    ns_mail_t m = {.from = "Отчёты Nightshift <reports@nightshift.test>",
                   .to = to,
                   .subject = subject,
                   .text = text};
    send_ok(&srv, &m);

    cJSON *msg = stored(to[0]);
    assert_well_formed(msg);
    ASSERT_STREQ(str(msg, "subject"), subject);
    ASSERT_STREQ(str(msg, "body"), text);
    ASSERT_STREQ(str(msg, "from"),
                 "Отчёты Nightshift <reports@nightshift.test>");
    /* Encoded words of at most 75 characters on lines of at most 76. */
    ASSERT(num(msg, "max_word") > 0 && num(msg, "max_word") <= 75);
    ASSERT(num(msg, "max_subject_line") <= 76);
    ASSERT_STREQ(str(msg, "body_cte"), "quoted-printable");
    cJSON_Delete(msg);
}

static char *test_bytes(size_t *len)
{
    /* Every byte value, CRLF-dot-CRLF, NULs, then pseudo-random bytes. */
    size_t n = 256 + 7 + 5000;
    unsigned char *d = malloc(n);
    for (size_t i = 0; i < 256; i++)
        d[i] = (unsigned char)i;
    memcpy(d + 256, "\0\0\r\n.\r\n", 7);
    uint32_t x = 2463534242u;
    for (size_t i = 263; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = (unsigned char)x;
    }
    *len = n;
    return (char *)d;
}

static char *hex(const char *data, size_t len)
{
    char *out = malloc(len * 2 + 1);
    for (size_t i = 0; i < len; i++)
        snprintf(out + i * 2, 3, "%02x", (unsigned char)data[i]);
    out[len * 2] = '\0';
    return out;
}

TEST(attachments_round_trip)
{
    ns_mail_server_t srv = stack_server();
    const char *to[] = {rcpt("attach"), NULL};
    size_t len = 0;
    char *data = test_bytes(&len);
    ns_mail_attachment_t att[] = {
        {"report 2025-01-01 10:00.xlsx",
         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         data, len},
        {"Отчёт за час.bin", NULL, "\0x\0", 3},
        {"evil\"\r\nBcc: evil@x.y\r\n\r\n.txt", "text/plain", "hi", 2},
        {"../../etc/passwd", NULL, "", 0},
    };
    ns_mail_t m = {.from = FROM,
                   .to = to,
                   .subject = "with attachments",
                   .text = "see attached",
                   .attachments = att,
                   .n_attachments = 4};
    send_ok(&srv, &m);

    cJSON *msg = stored(to[0]);
    assert_well_formed(msg);
    const cJSON *list = get(msg, "attachments");
    ASSERT_EQ(cJSON_GetArraySize(list), 4);
    const cJSON *a0 = cJSON_GetArrayItem(list, 0);
    char *want = hex(data, len);
    ASSERT_EQ(num(a0, "len"), len);
    ASSERT(strcmp(str(a0, "hex"), want) == 0);
    ASSERT_STREQ(str(a0, "filename"), "report 2025-01-01 10_00.xlsx");
    ASSERT_STREQ(str(a0, "content_type"), att[0].mime_type);
    ASSERT_STREQ(str(a0, "cte"), "base64");
    ASSERT_STREQ(str(a0, "disposition"), "attachment");

    const cJSON *a1 = cJSON_GetArrayItem(list, 1);
    ASSERT_STREQ(str(a1, "filename"), "Отчёт за час.bin"); /* RFC 2231 */
    ASSERT_STREQ(str(a1, "hex"), "007800");
    ASSERT_STREQ(str(a1, "content_type"), "application/octet-stream");

    const cJSON *a2 = cJSON_GetArrayItem(list, 2);
    ASSERT_STREQ(str(a2, "filename"), "evil_  Bcc_ evil@x.y    .txt");
    ASSERT_EQ(count_in(get(a2, "header_names"), "Bcc"), 0);
    ASSERT_STREQ(str(a2, "hex"), "6869");

    const cJSON *a3 = cJSON_GetArrayItem(list, 3);
    ASSERT_STREQ(str(a3, "filename"), "passwd");
    ASSERT_EQ(num(a3, "len"), 0);
    free(want);
    free(data);
    cJSON_Delete(msg);
}

static void expect_rejected(const char *from, const char *to0, const char *why)
{
    ns_mail_server_t srv = stack_server();
    const char *to[] = {to0, NULL};
    ns_mail_t m = {.from = from, .to = to, .subject = "x", .text = "x"};
    ns_error_t err;
    int before = stored_count();
    ns_err_t rc = send_mail(&srv, &m, &err);
    if (rc != NS_ERR_PERMANENT || strstr(err.msg, why) == NULL)
        NSTEST_FAIL("from \"%s\" to \"%s\": %s: %s (want permanent, \"%s\")",
                    from, to0, ns_err2str(rc), err.msg, why);
    if (strchr(err.msg, '\r') || strchr(err.msg, '\n'))
        NSTEST_FAIL("raw CR/LF in the error message: %s", err.msg);
    ASSERT_EQ(stored_count(), before);
}

TEST(header_injection_in_addresses_is_rejected)
{
    expect_rejected(FROM, "a@b.c\r\nBcc: evil@x.y", "control character");
    expect_rejected(FROM, "a@b.c\nBcc: evil@x.y", "control character");
    expect_rejected("r@nightshift.test\r\nBcc: evil@x.y", "a@b.c",
                    "control character");
    expect_rejected(FROM, "Name <a@b.c", "do not match");
    expect_rejected(FROM, "a@b.c>", "do not match");
    expect_rejected(FROM, "A <a@b.c>, evil@x.y", "do not match");
    expect_rejected(FROM, "Two <a@b.c> <evil@x.y>", "do not match");
    expect_rejected(FROM, "a@b.c, evil@x.y", "not a plain address");
    expect_rejected(FROM, "\"quoted\"@b.c", "not a plain address");
    expect_rejected(FROM, "a@b.c;evil@x.y", "not a plain address");
    expect_rejected(FROM, "nobody", "not a plain address");
    expect_rejected(FROM, "a..b@c.d", "not a plain address");
    expect_rejected(FROM, "a@-b.c", "not a plain address");
    expect_rejected(FROM, "", "empty address");
    ns_error_t err;
    ASSERT_EQ(
        ns_mail_check_address("Ok Name <ok.name+tag@sub.example.com>", &err),
        NS_OK);
}

TEST(header_injection_in_subject_is_neutralized)
{
    ns_mail_server_t srv = stack_server();
    const char *to[] = {rcpt("subj"), NULL};
    ns_mail_t m = {.from = FROM,
                   .to = to,
                   .subject = "Report\r\nBcc: evil@x.y\r\n\r\nbody?\x01\x7f",
                   .text = "x"};
    send_ok(&srv, &m);
    cJSON *msg = stored(to[0]);
    assert_well_formed(msg);
    ASSERT_STREQ(str(msg, "subject"), "Report  Bcc: evil@x.y    body?");
    ASSERT_EQ(cJSON_GetArraySize(get(get(msg, "envelope"), "rcpt_tos")), 1);
    cJSON_Delete(msg);

    /* A subject that looks like an encoded word is encoded, not trusted. */
    const char *to2[] = {rcpt("subj2"), NULL};
    m.to = to2;
    m.subject = "=?UTF-8?B?QmNjOiBldmlsQHgueQ==?=";
    send_ok(&srv, &m);
    msg = stored(to2[0]);
    assert_well_formed(msg);
    ASSERT_STREQ(str(msg, "subject"), m.subject);
    cJSON_Delete(msg);
}

TEST(auth)
{
    ns_mail_server_t srv = stack_server();
    const char *to[] = {rcpt("auth"), NULL};
    ns_mail_t m = {.from = FROM, .to = to, .subject = "auth", .text = "x"};
    ns_error_t err;
    srv.password = "wrong-password-123";
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 535);

    srv = stack_server();
    srv.user = NULL; /* the server requires AUTH: 530 */
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 530);

    srv = stack_server();
    send_ok(&srv, &m);
    cJSON *msg = stored(to[0]);
    ASSERT_STREQ(str(get(msg, "envelope"), "auth_user"), srv.user);
    cJSON_Delete(msg);
}

TEST(starttls_required)
{
    if (getenv("NS_SMTP_CA_FILE") == NULL) {
        printf("skipped: no NS_SMTP_CA_FILE\n");
        return;
    }
    ns_mail_server_t srv = stack_server();
    srv.starttls = NS_MAIL_TLS_REQUIRED;
    const char *to[] = {rcpt("tls"), NULL};
    ns_mail_t m = {.from = FROM, .to = to, .subject = "tls", .text = "x"};
    send_ok(&srv, &m);
    cJSON *msg = stored(to[0]);
    ASSERT_EQ(num(get(msg, "envelope"), "tls"), 1);
    cJSON_Delete(msg);

    /* Without the test CA the self-signed certificate must not verify. */
    unsetenv("NS_SMTP_CA_FILE");
    const char *to2[] = {rcpt("tls-untrusted"), NULL};
    m.to = to2;
    ns_error_t err;
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_PERMANENT);
    srv.starttls = NS_MAIL_TLS_TRY; /* "try" still verifies what it gets */
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_PERMANENT);
}

TEST(recipient_replies)
{
    ns_mail_server_t srv = stack_server();
    ns_error_t err;
    const char *to[] = {rcpt("ok"), "reject-me@example.test", NULL};
    ns_mail_t m = {.from = FROM, .to = to, .subject = "x", .text = "x"};
    int before = stored_count();
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 550);
    ASSERT(strstr(err.msg, "550") != NULL);

    to[1] = "tempfail-me@example.test";
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 451);
    ASSERT_EQ(stored_count(), before); /* nobody got a partial delivery */
}

/* A loopback port with nothing listening. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        NSTEST_FAIL("bind: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

TEST(server_down_is_transient)
{
    char url[64];
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", closed_port());
    ns_mail_server_t srv = stack_server();
    srv.url = url;
    const char *to[] = {rcpt("down"), NULL};
    ns_mail_t m = {.from = FROM, .to = to, .subject = "x", .text = "x"};
    ns_error_t err;
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_TRANSIENT);

    /* Accepts the connection (the kernel does) but never greets. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 4) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        NSTEST_FAIL("listen: %s", strerror(errno));
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", ntohs(sa.sin_port));
    srv.timeout_ms = 300;
    ASSERT_EQ(send_mail(&srv, &m, &err), NS_ERR_TRANSIENT);
    ASSERT(strstr(err.msg, "imeout") != NULL || strstr(err.msg, "timed out"));
    close(fd);
}

TEST(server_settings)
{
    const char *to[] = {"a@b.c", NULL};
    ns_mail_t m = {.from = FROM, .to = to, .subject = "x", .text = "x"};
    ns_error_t err;
    ns_mail_server_t srv = {.url = "smtp://mail.example.com:25",
                            .starttls = NS_MAIL_TLS_NONE};
    ASSERT_EQ(ns_mail_send(&srv, &m, &err), NS_ERR_INVALID);
    ASSERT(strstr(err.msg, "loopback") != NULL);
    srv.url = "http://127.0.0.1:25";
    ASSERT_EQ(ns_mail_send(&srv, &m, &err), NS_ERR_INVALID);
    srv.url = "smtp://user:secret@127.0.0.1:25";
    ASSERT_EQ(ns_mail_send(&srv, &m, &err), NS_ERR_INVALID);
    ASSERT(strstr(err.msg, "secret") == NULL);
    srv.url = NULL;
    ASSERT_EQ(ns_mail_send(&srv, &m, &err), NS_ERR_INVALID);
}

TEST(encode_subject)
{
    char *s = ns_mail_encode_subject("plain");
    ASSERT_STREQ(s, "plain");
    free(s);
    s = ns_mail_encode_subject("a\r\nb\tc\x1b");
    ASSERT_STREQ(s, "a  b c");
    free(s);
    s = ns_mail_encode_subject("é");
    ASSERT_STREQ(s, "=?UTF-8?B?w6k=?=");
    free(s);
    s = ns_mail_encode_subject(NULL);
    ASSERT_STREQ(s, "");
    free(s);
}

int main(int argc, char **argv)
{
    const char *need[] = {"NS_SMTP_URL", "NS_SMTP_USER", "NS_SMTP_PASSWORD",
                          "NS_SMTP_MAILDIR"};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        const char *v = getenv(need[i]);
        if (v == NULL || v[0] == '\0') {
            printf("skipped: %s is not set (start tests/stack.sh up and "
                   "eval \"$(tests/stack.sh env)\")\n",
                   need[i]);
            return 77;
        }
    }
    return nstest_main(argc, argv);
}
