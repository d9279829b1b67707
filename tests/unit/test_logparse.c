/* test_logparse.c: the log template parser (text/logparse.c): masking of
 * each variable kind, grouping and separation, id stability across handles,
 * generalisation, limits, refused lines, match-only, load. */
#include "ns/logparse.h"

#include "nstest.h"

static ns_logparse_t *parser(const ns_logparse_opts_t *opts)
{
    char err[256];
    ns_logparse_t *p = ns_logparse_new(opts, err, sizeof(err));
    if (p == NULL)
        NSTEST_FAIL("ns_logparse_new: %s", err);
    return p;
}

static uint64_t add(ns_logparse_t *p, const char *line)
{
    uint64_t id = 0;
    ns_error_t err;
    ns_error_clear(&err);
    if (ns_logparse_add(p, line, strlen(line), &id, &err) != NS_OK)
        NSTEST_FAIL("ns_logparse_add(\"%s\"): %s", line, err.msg);
    ASSERT(id != 0);
    return id;
}

/* The template one line gets in a fresh parser: its masked form. */
static const char *masked(const char *line)
{
    static char out[4096];
    ns_logparse_t *p = parser(NULL);
    snprintf(out, sizeof(out), "%s", ns_logparse_template(p, add(p, line)));
    ns_logparse_destroy(p);
    return out;
}

TEST(masks_numbers_hex_and_uuids)
{
    ASSERT_STREQ(masked("took 42 steps, -7 back, 3.25e-3 left"),
                 "took <NUM> steps, <NUM> back, <NUM> left");
    ASSERT_STREQ(masked("at 0x7ffd1234 sha 3f786850e387550fdab836ed7e6dc881"),
                 "at <HEX> sha <HEX>");
    ASSERT_STREQ(masked("deadbeef stays a word, 1a2b3c4d does not"),
                 "deadbeef stays a word, <HEX> does not");
    ASSERT_STREQ(masked("req 550e8400-e29b-41d4-a716-446655440000 done"),
                 "req <UUID> done");
    ASSERT_STREQ(masked("mac 00:1a:2b:3c:4d:5e version 1.2.3"),
                 "mac <HEX> version <NUM>");
}

TEST(masks_addresses)
{
    ASSERT_STREQ(masked("from 192.168.1.10 port 22"), "from <IP> port <NUM>");
    ASSERT_STREQ(masked("to 10.0.0.1:5432 net 10.0.0.0/24"),
                 "to <IP> net <IP>");
    ASSERT_STREQ(masked("v6 fe80::1 2001:db8::ff00:42:8329 [::1]:8080"),
                 "v6 <IP> <IP> [<IP>]:<NUM>");
    ASSERT_STREQ(masked("1:2:3:4:5:6:7:8 full"), "<IP> full");
    /* Not an address (999), but still a dotted number. */
    ASSERT_STREQ(masked("999.1.1.1 is no address"), "<NUM> is no address");
}

TEST(masks_paths_urls_emails)
{
    ASSERT_STREQ(masked("open /var/log/syslog failed"), "open <PATH> failed");
    ASSERT_STREQ(masked("read ./conf/a.yaml ~/x C:\\Users\\bob\\a.txt"),
                 "read <PATH> <PATH> <PATH>");
    ASSERT_STREQ(masked("GET https://example.com/a?b=1 from joe@example.com"),
                 "GET <URL> from <EMAIL>");
    ASSERT_STREQ(masked("a / b and postgres@db"), "a / b and postgres@db");
}

TEST(masks_durations)
{
    ASSERT_STREQ(
        masked("took 12ms then 1.5s then 3m then 2h30m then 5\xc2\xb5s"),
        "took <DUR> then <DUR> then <DUR> then <DUR> then <DUR>");
    ASSERT_STREQ(masked("10min 250us 7d"), "<DUR> <DUR> <DUR>");
}

TEST(masks_timestamps)
{
    ASSERT_STREQ(masked("2024-01-03T10:50:33.123Z start"), "<TS> start");
    ASSERT_STREQ(masked("2024-01-03 10:50:33,123 +0100 start"), "<TS> start");
    ASSERT_STREQ(masked("Dec  3 10:50:33 host sshd[1234]: Accepted"),
                 "<TS> host sshd[<NUM>]: Accepted");
    ASSERT_STREQ(masked("Mon Dec  3 10:50:33 2024 boot"), "<TS> boot");
    ASSERT_STREQ(masked("[03/Dec/2024:10:50:33 +0000] GET"), "[<TS>] GET");
    ASSERT_STREQ(masked("at 10:50 or 1700000000 or 1700000000123 or "
                        "1700000000.25"),
                 "at <TS> or <TS> or <TS> or <TS>");
    ASSERT_STREQ(masked("day 2024-01-03 only"), "day <TS> only");
    /* A month name alone is a word. */
    ASSERT_STREQ(masked("May I 3"), "May I <NUM>");
}

TEST(masks_key_values_and_pieces)
{
    ASSERT_STREQ(masked("pid=123 user=bob took=12ms to=10.0.0.1 empty="),
                 "pid=<NUM> user=<*> took=<DUR> to=<IP> empty=");
    ASSERT_STREQ(masked("sshd[1234]: (pid=99), id#42 x:7"),
                 "sshd[<NUM>]: (pid=<NUM>), id#<NUM> x:<NUM>");
    ASSERT_STREQ(masked("amd64 and libc6 keep their digits"),
                 "amd64 and libc6 keep their digits");

    ns_logparse_opts_t o = {.keep_kv_values = 1};
    ns_logparse_t *p = parser(&o);
    ASSERT_STREQ(ns_logparse_template(p, add(p, "user=bob pid=7")),
                 "user=bob pid=<NUM>");
    ns_logparse_destroy(p);
}

TEST(whitespace_and_newline)
{
    ASSERT_STREQ(masked("  a\t\tb   c \r\n"), "a b c");
    ASSERT_STREQ(masked(""), "");
}

TEST(groups_lines_that_differ_in_variables)
{
    ns_logparse_t *p = parser(NULL);
    uint64_t a = add(p, "Connection from 10.0.0.1 port 22 closed after 3s");
    uint64_t b = add(p, "Connection from 10.9.8.7 port 2222 closed after 12ms");
    ASSERT_EQ(a, b);
    ASSERT_EQ(ns_logparse_count(p), 1);
    ns_logtemplate_t t;
    ASSERT(ns_logparse_get(p, a, &t));
    ASSERT_EQ(t.count, 2);
    ASSERT_EQ(t.revision, 0);
    ASSERT_STREQ(t.text, "Connection from <IP> port <NUM> closed after <DUR>");
    ns_logparse_destroy(p);
}

TEST(separates_different_constant_words)
{
    ns_logparse_t *p = parser(NULL);
    uint64_t a = add(p, "disk sda1 is full");
    uint64_t b = add(p, "user bob logged out");
    uint64_t c = add(p, "disk sda1 is full now"); /* other token count */
    ASSERT(a != b);
    ASSERT(a != c && b != c);
    ASSERT_EQ(ns_logparse_count(p), 3);
    ns_logparse_destroy(p);
}

TEST(generalises_and_keeps_the_id)
{
    ns_logparse_t *p = parser(NULL);
    uint64_t a = add(p, "Session opened for user bob by web");
    ASSERT_EQ(a, ns_logparse_text_id("Session opened for user bob by web", 34));
    uint64_t b = add(p, "Session opened for user amy by web");
    ASSERT_EQ(a, b);
    ns_logtemplate_t t;
    ASSERT(ns_logparse_get(p, a, &t));
    ASSERT_STREQ(t.text, "Session opened for user <*> by web");
    ASSERT_EQ(t.revision, 1);
    ASSERT_EQ(t.text_id, ns_logparse_text_id(t.text, strlen(t.text)));
    ASSERT(t.text_id != t.id);
    /* A line that the template already covers changes nothing. */
    ASSERT_EQ(add(p, "Session opened for user joe by web"), a);
    ASSERT(ns_logparse_get(p, a, &t));
    ASSERT_EQ(t.revision, 1);
    ASSERT_EQ(t.count, 3);
    ns_logparse_destroy(p);
}

typedef struct seen {
    uint64_t ids[16];
    char texts[16][128];
    size_t n;
} seen_t;

static void collect(const ns_logtemplate_t *t, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16) {
        s->ids[s->n] = t->id;
        snprintf(s->texts[s->n++], 128, "%s", t->text);
    }
}

static uint64_t id_of(const seen_t *s, const char *text)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->texts[i], text) == 0)
            return s->ids[i];
    NSTEST_FAIL("no template \"%s\"", text);
}

TEST(ids_are_stable_across_handles_and_orders)
{
    static const char *const lines[] = {
        "Dec  3 10:50:33 h sshd[11]: Accepted key for 10.0.0.1 port 22",
        "2024-01-03 10:50:33 status installed libc6 2.36",
        "job 42 took 12ms",
        "Dec  4 11:00:01 h sshd[99]: Accepted key for 10.0.0.2 port 2022",
        "2024-01-04 09:00:00 status installed libc6 2.37",
        "job 7 took 1.5s",
    };
    size_t n = sizeof(lines) / sizeof(lines[0]);
    ns_logparse_t *p = parser(NULL), *q = parser(NULL);
    for (size_t i = 0; i < n; i++) {
        add(p, lines[i]);
        add(q, lines[n - 1 - i]);
    }
    seen_t a = {0}, b = {0};
    ns_logparse_each(p, collect, &a);
    ns_logparse_each(q, collect, &b);
    ASSERT_EQ(a.n, 3);
    ASSERT_EQ(b.n, 3);
    for (size_t i = 0; i < a.n; i++)
        ASSERT_EQ(a.ids[i], id_of(&b, a.texts[i]));
    ASSERT_EQ(id_of(&a, "job <NUM> took <DUR>"),
              ns_logparse_text_id("job <NUM> took <DUR>", 20));
    ns_logparse_destroy(p);
    ns_logparse_destroy(q);
}

TEST(template_limit)
{
    ns_logparse_opts_t o = {.max_templates = 2};
    ns_logparse_t *p = parser(&o);
    add(p, "alpha beta gamma");
    add(p, "one two");
    uint64_t id = 1;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_logparse_add(p, "x y z w", 7, &id, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(id, 0);
    ASSERT(strstr(err.msg, "limit (2)") != NULL);
    /* Lines of the existing templates still go in. */
    ASSERT_EQ(ns_logparse_add(p, "one two", 7, &id, &err), NS_OK);
    ASSERT_EQ(ns_logparse_count(p), 2);
    ns_logparse_destroy(p);
}

TEST(refuses_long_lines_and_invalid_utf8)
{
    ns_logparse_opts_t o = {.max_line_len = 64};
    ns_logparse_t *p = parser(&o);
    char line[100];
    memset(line, 'a', sizeof(line));
    uint64_t id = 1;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_logparse_add(p, line, 65, &id, &err), NS_ERR_PERMANENT);
    ASSERT(strstr(err.msg, "65 bytes") != NULL);
    ASSERT_EQ(ns_logparse_match(p, line, 65, &id, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(ns_logparse_add(p, line, 64, &id, &err), NS_OK);
    /* The newline does not count. */
    line[64] = '\n';
    ASSERT_EQ(ns_logparse_add(p, line, 65, &id, &err), NS_OK);

    ASSERT_EQ(ns_logparse_add(p, "bad \xff byte", 10, &id, &err),
              NS_ERR_PERMANENT);
    ASSERT(strstr(err.msg, "UTF-8") != NULL && strstr(err.msg, "4") != NULL);
    ASSERT_EQ(ns_logparse_add(p, "nul \0 byte", 10, &id, &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(ns_logparse_add(p, "overlong \xc0\xaf", 11, &id, &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(id, 0);
    ASSERT_EQ(ns_logparse_count(p), 1);
    /* Valid UTF-8 is welcome. */
    ASSERT_STREQ(masked("Größe 12 überschritten 日本"),
                 "Größe <NUM> überschritten 日本");
    ns_logparse_destroy(p);
}

TEST(match_does_not_modify)
{
    ns_logparse_t *p = parser(NULL);
    uint64_t a = add(p, "Session opened for user bob by web");
    uint64_t id = 0;
    ns_error_t err;
    ns_error_clear(&err);
    const char *other = "Session opened for user amy by web";
    ASSERT_EQ(ns_logparse_match(p, other, strlen(other), &id, &err), NS_OK);
    ASSERT_EQ(id, a);
    const char *novel = "kernel panic not syncing at all";
    ASSERT_EQ(ns_logparse_match(p, novel, strlen(novel), &id, &err),
              NS_ERR_NOT_FOUND);
    ASSERT_EQ(id, 0);
    ns_logtemplate_t t;
    ASSERT(ns_logparse_get(p, a, &t));
    ASSERT_STREQ(t.text, "Session opened for user bob by web");
    ASSERT_EQ(t.count, 1);
    ASSERT_EQ(t.revision, 0);
    ASSERT_EQ(ns_logparse_count(p), 1);
    /* match agrees with what add then does. */
    ASSERT_EQ(add(p, other), a);
    ns_logparse_destroy(p);
}

TEST(load_restores_templates)
{
    ns_logparse_t *p = parser(NULL);
    uint64_t a = add(p, "Session opened for user bob by web");
    add(p, "Session opened for user amy by web");
    ns_logtemplate_t t;
    ASSERT(ns_logparse_get(p, a, &t));

    ns_logparse_t *q = parser(NULL);
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_logparse_load(q, t.id, t.text, t.count, &err), NS_OK);
    ASSERT_EQ(ns_logparse_load(q, t.id, "other", 1, &err), NS_ERR_INVALID);
    ASSERT_EQ(add(q, "Session opened for user joe by web"), a);
    ns_logtemplate_t u;
    ASSERT(ns_logparse_get(q, a, &u));
    ASSERT_STREQ(u.text, "Session opened for user <*> by web");
    ASSERT_EQ(u.count, 3);
    ASSERT_EQ(u.revision, 0);
    ns_logparse_destroy(p);
    ns_logparse_destroy(q);
}

TEST(max_children_sends_the_rest_to_the_wildcard)
{
    ns_logparse_opts_t o = {.max_children = 3, .depth = 1};
    ns_logparse_t *p = parser(&o);
    uint64_t a = add(p, "alpha is on");
    uint64_t b = add(p, "beta is on");
    /* The root's length node is full (2 constants + <*>): gamma and delta
     * share the <*> child and merge there. */
    uint64_t c = add(p, "gamma is on");
    uint64_t d = add(p, "delta is on");
    ASSERT(a != b && a != c && b != c);
    ASSERT_EQ(c, d);
    ASSERT_STREQ(ns_logparse_template(p, c), "<*> is on");
    ns_logparse_destroy(p);
}

TEST(bad_options)
{
    char err[256] = "";
    ns_logparse_opts_t o = {.sim_threshold = 1.5};
    ASSERT(ns_logparse_new(&o, err, sizeof(err)) == NULL);
    ASSERT(strstr(err, "sim_threshold") != NULL);
    o = (ns_logparse_opts_t){.max_children = 1};
    ASSERT(ns_logparse_new(&o, err, sizeof(err)) == NULL);
}

TEST(destroy_null)
{
    ns_logparse_destroy(NULL);
    ns_logparse_t *p = parser(NULL);
    ASSERT(ns_logparse_template(p, 42) == NULL);
    ns_logparse_destroy(p);
}

NSTEST_MAIN
