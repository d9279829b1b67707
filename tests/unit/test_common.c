/* test_common.c: the small pieces of common/: retry backoff, the bounded
 * buffer, UTF-8 validation and repair, log redaction, the test clock. */
#include <math.h>
#include <time.h>

#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/log.h"
#include "ns/pg.h"
#include "ns/retry.h"
#include "ns/utf8.h"
#include "nstest.h"
#include <string.h>
#include <utf8proc.h>

/* ---- ns_backoff_ms ---- */

/* Draws samples and asserts they lie in [lo, hi], spread over most of it
 * (full jitter, not a fixed delay). */
static void assert_backoff_range(const ns_retry_t *policy, int attempt,
                                 double retry_after_s, int64_t lo, int64_t hi)
{
    unsigned seed = 12345u + (unsigned)attempt;
    int64_t min = INT64_MAX, max = INT64_MIN;
    for (int i = 0; i < 2000; i++) {
        int64_t d = ns_backoff_ms(policy, attempt, retry_after_s, &seed);
        if (d < lo || d > hi)
            NSTEST_FAIL("attempt %d: delay %lld outside [%lld, %lld]", attempt,
                        (long long)d, (long long)lo, (long long)hi);
        min = d < min ? d : min;
        max = d > max ? d : max;
    }
    if (hi > lo && (min > lo + (hi - lo) / 10 || max < hi - (hi - lo) / 10))
        NSTEST_FAIL("attempt %d: delays only in [%lld, %lld] of [%lld, %lld]",
                    attempt, (long long)min, (long long)max, (long long)lo,
                    (long long)hi);
}

TEST(backoff_full_jitter_grows_to_cap)
{
    ns_retry_t policy = {
        .max_attempts = 5, .backoff_s = 1, .backoff_max_s = 60};
    for (int attempt = 1; attempt <= 12; attempt++) {
        int64_t ceiling = 1000LL << (attempt - 1);
        if (ceiling > 60000)
            ceiling = 60000;
        assert_backoff_range(&policy, attempt, -1, 0, ceiling);
    }
    /* Attempt 0 or less: the base delay. */
    assert_backoff_range(&policy, 0, -1, 0, 1000);
    assert_backoff_range(&policy, -5, -1, 0, 1000);

    ns_retry_t fractional = {.backoff_s = 0.25, .backoff_max_s = 3};
    assert_backoff_range(&fractional, 1, -1, 0, 250);
    assert_backoff_range(&fractional, 3, -1, 0, 1000);
    assert_backoff_range(&fractional, 9, -1, 0, 3000);
}

TEST(backoff_defaults_when_unset)
{
    ns_retry_t zero = {0};
    assert_backoff_range(&zero, 1, -1, 0, 1000);
    assert_backoff_range(&zero, 20, -1, 0, 60000);
    ns_retry_t negative = {.backoff_s = -3, .backoff_max_s = -1};
    assert_backoff_range(&negative, 2, -1, 0, 2000);
}

TEST(backoff_retry_after_raises_delay)
{
    ns_retry_t policy = {.backoff_s = 1, .backoff_max_s = 60};
    unsigned seed = 7;
    for (int i = 0; i < 1000; i++) {
        ASSERT_EQ(ns_backoff_ms(&policy, 1, 30, &seed), 30000);
        ASSERT_EQ(ns_backoff_ms(&policy, 1, 2.5, &seed), 2500);
        /* Above the cap, too: the server knows best. */
        ASSERT_EQ(ns_backoff_ms(&policy, 3, 120, &seed), 120000);
    }
    /* A hint below the jittered delay only sets the floor. */
    assert_backoff_range(&policy, 7, 10, 10000, 60000);
    /* 0 is a hint ("retry now"), -1 and NaN are none. */
    assert_backoff_range(&policy, 4, 0, 0, 8000);
    assert_backoff_range(&policy, 4, NAN, 0, 8000);
}

TEST(backoff_huge_values_do_not_overflow)
{
    ns_retry_t policy = {.backoff_s = 1, .backoff_max_s = 60};
    unsigned seed = 99;
    const int attempts[] = {31, 63, 64, 1000, 1 << 30, INT32_MAX};
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++)
        assert_backoff_range(&policy, attempts[i], -1, 0, 60000);

    /* An uncapped policy stays finite and positive. */
    ns_retry_t uncapped = {.backoff_s = 1, .backoff_max_s = 1e300};
    for (int i = 0; i < 100; i++) {
        int64_t d = ns_backoff_ms(&uncapped, INT32_MAX, -1, &seed);
        ASSERT(d >= 0);
        ASSERT(d <= (1000LL << 30));
    }
    /* A hostile Retry-After (1e300 s, inf, LONG_MAX from strtol) must not
     * wrap to a negative delay, which would mean "retry at once"; it is
     * honoured up to NS_RETRY_AFTER_MAX_S. */
    const double hints[] = {1e300, INFINITY, 9.2233720368547758e18, 1e16};
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        int64_t d = ns_backoff_ms(&policy, 1, hints[i], &seed);
        if (d != (int64_t)(NS_RETRY_AFTER_MAX_S * 1000))
            NSTEST_FAIL("retry_after %g: delay %lld ms", hints[i],
                        (long long)d);
    }
}

/* ---- ns_buf ---- */

TEST(pg_array_literal_quotes_every_element)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 10);
    ASSERT_EQ(ns_pg_array_end(&b), NS_OK);
    ASSERT_STREQ(b.data, "{}");
    ns_buf_free(&b);
    ns_buf_init(&b, 1 << 10);
    ASSERT_EQ(ns_pg_array_add(&b, "plain"), NS_OK);
    ASSERT_EQ(ns_pg_array_add(&b, "q\"b\\s,{x}"), NS_OK);
    ASSERT_EQ(ns_pg_array_add(&b, NULL), NS_OK);
    ASSERT_EQ(ns_pg_array_add(&b, "NULL"), NS_OK);
    ASSERT_EQ(ns_pg_array_end(&b), NS_OK);
    ASSERT_STREQ(b.data, "{\"plain\",\"q\\\"b\\\\s,{x}\",NULL,\"NULL\"}");
    ns_buf_free(&b);
    /* Past the buffer's bound: an error, never a cut literal. */
    ns_buf_init(&b, 8);
    ASSERT_EQ(ns_pg_array_add(&b, "abc"), NS_OK);
    ASSERT(ns_pg_array_add(&b, "defgh") != NS_OK);
    ns_buf_free(&b);
}

TEST(pg_copy_field_escapes_what_copy_text_reads_specially)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 10);
    static const char in[] = "{\"k\": \"a\\\"b\"}\tx\ny\rz\\N";
    ASSERT_EQ(ns_pg_copy_field(&b, in, sizeof(in) - 1), NS_OK);
    ASSERT_STREQ(b.data, "{\"k\": \"a\\\\\"b\"}\\tx\\ny\\rz\\\\N");
    /* An empty field adds nothing. */
    ns_buf_reset(&b);
    ASSERT_EQ(ns_pg_copy_field(&b, "plain", 5), NS_OK);
    ASSERT_EQ(ns_pg_copy_field(&b, "", 0), NS_OK);
    ASSERT_STREQ(b.data, "plain");
    ns_buf_free(&b);
    /* Past the bound: an error. */
    ns_buf_init(&b, 4);
    ASSERT(ns_pg_copy_field(&b, "a\\bc", 4) != NS_OK);
    ns_buf_free(&b);
}

TEST(buf_append_within_max)
{
    ns_buf_t b;
    ns_buf_init(&b, 10);
    ASSERT(b.data == NULL && b.len == 0);
    ASSERT_EQ(ns_buf_adds(&b, "hello"), NS_OK);
    ASSERT_EQ(ns_buf_add(&b, "world", 5), NS_OK); /* exactly max */
    ASSERT_STREQ(b.data, "helloworld");
    ASSERT_EQ(b.len, 10);
    ASSERT_EQ(ns_buf_add(&b, "", 0), NS_OK);
    ASSERT_EQ(b.data[b.len], '\0');
    ns_buf_free(&b);
    ASSERT(b.data == NULL && b.len == 0);
    ns_buf_free(&b);
}

TEST(buf_append_past_max_fails_intact)
{
    ns_buf_t b;
    ns_buf_init(&b, 10);
    ASSERT_EQ(ns_buf_adds(&b, "hello"), NS_OK);
    ASSERT_EQ(ns_buf_adds(&b, "world!"), NS_ERR_INVALID);
    ASSERT_STREQ(b.data, "hello");
    ASSERT_EQ(b.len, 5);
    ASSERT_EQ(ns_buf_add(&b, "x", SIZE_MAX), NS_ERR_INVALID);
    ASSERT_EQ(ns_buf_add(&b, "x", SIZE_MAX - 3), NS_ERR_INVALID);
    ASSERT_EQ(ns_buf_addf(&b, "%d", 123456), NS_ERR_INVALID);
    ASSERT_STREQ(b.data, "hello");
    ASSERT_EQ(ns_buf_addf(&b, "%d", 12345), NS_OK);
    ASSERT_STREQ(b.data, "hello12345");
    ASSERT_EQ(ns_buf_adds(&b, "!"), NS_ERR_INVALID);
    ASSERT_STREQ(b.data, "hello12345");
    ns_buf_free(&b);

    ns_buf_t none;
    ns_buf_init(&none, 0);
    ASSERT_EQ(ns_buf_adds(&none, "a"), NS_ERR_INVALID);
    ASSERT(none.data == NULL);
    char *s = ns_buf_take(&none);
    ASSERT_STREQ(s, "");
    free(s);
}

TEST(buf_addf_long_strings)
{
    char *long_text = malloc(5001);
    for (int i = 0; i < 5000; i++)
        long_text[i] = (char)('a' + i % 26);
    long_text[5000] = '\0';
    ns_buf_t b;
    ns_buf_init(&b, 1 << 20);
    ASSERT_EQ(ns_buf_addf(&b, "<%s|%d>", long_text, 42), NS_OK);
    ASSERT_EQ(b.len, 5000 + 5);
    ASSERT_EQ(b.data[0], '<');
    ASSERT(strncmp(b.data + 1, long_text, 5000) == 0);
    ASSERT_STREQ(b.data + 5001, "|42>");
    /* Exactly the size of the small stack buffer, and one past it. */
    ns_buf_reset(&b);
    ASSERT_EQ(b.len, 0);
    ASSERT_STREQ(b.data, "");
    ASSERT_EQ(ns_buf_addf(&b, "%.255s", long_text), NS_OK);
    ASSERT_EQ(ns_buf_addf(&b, "%.256s", long_text), NS_OK);
    ASSERT_EQ(ns_buf_addf(&b, "%.257s", long_text), NS_OK);
    ASSERT_EQ(b.len, 255 + 256 + 257);
    ASSERT(strncmp(b.data + 255, long_text, 256) == 0);
    ASSERT(strncmp(b.data + 511, long_text, 257) == 0);

    /* A long addf that does not fit leaves the contents as they were. */
    ns_buf_t small;
    ns_buf_init(&small, 1000);
    ASSERT_EQ(ns_buf_adds(&small, "kept"), NS_OK);
    ASSERT_EQ(ns_buf_addf(&small, "%s", long_text), NS_ERR_INVALID);
    ASSERT_STREQ(small.data, "kept");
    ASSERT_EQ(small.len, 4);

    char *taken = ns_buf_take(&b);
    ASSERT_EQ(strlen(taken), 768);
    ASSERT(b.data == NULL && b.len == 0 && b.cap == 0);
    ASSERT_EQ(ns_buf_adds(&b, "again"), NS_OK);
    ASSERT_STREQ(b.data, "again");
    free(taken);
    ns_buf_free(&b);
    ns_buf_free(&small);
    free(long_text);
}

TEST(buf_binary_and_growth)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++)
        ASSERT_EQ(ns_buf_add(&b, "\0x", 2), NS_OK);
    ASSERT_EQ(b.len, 200000);
    ASSERT(b.cap > b.len);
    ASSERT_EQ(b.data[199998], '\0');
    ASSERT_EQ(b.data[199999], 'x');
    ASSERT_EQ(b.data[200000], '\0');
    ns_buf_free(&b);
}

/* ---- UTF-8 ---- */

#define INVALID_AT(s) ns_utf8_invalid_at((s), sizeof(s) - 1)

/* The ASCII fast path of ns_utf8_invalid_at against utf8proc alone, on
 * random strings mixing ASCII runs, UTF-8, invalid bytes and NULs at
 * every alignment. */
static long reference_invalid_at(const char *s, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos,
                             (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0 || cp == 0)
            return (long)pos;
        pos += (size_t)n;
    }
    return -1;
}

TEST(utf8_fast_path_equals_utf8proc)
{
    static const char *const pieces[] = {"a",
                                         "hello world ",
                                         "0123456789abcdef",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x9a\x80",
                                         "\xff",
                                         "\xc3",
                                         "\xe2\x82",
                                         "\xed\xa0\x80",
                                         "\x80",
                                         "\xf4\x90\x80\x80",
                                         "\x7f",
                                         "\x01"};
    unsigned seed = 12345;
    char buf[128];
    for (int round = 0; round < 200000; round++) {
        size_t len = 0;
        int n = (int)(rand_r(&seed) % 12);
        for (int k = 0; k < n; k++) {
            const char *p =
                pieces[rand_r(&seed) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t l = strlen(p);
            if (len + l + 1 >= sizeof(buf))
                break;
            memcpy(buf + len, p, l);
            len += l;
            if (rand_r(&seed) % 40 == 0)
                buf[len++] = '\0'; /* a NUL is invalid too */
        }
        size_t off = (size_t)(rand_r(&seed) % 8);
        off = off < len ? off : 0; /* every alignment of the fast path */
        long want = reference_invalid_at(buf + off, len - off);
        long got = ns_utf8_invalid_at(buf + off, len - off);
        if (got != want)
            NSTEST_FAIL("round %d: %ld != %ld", round, got, want);
    }
}

TEST(utf8_valid_input)
{
    ASSERT_EQ(ns_utf8_invalid_at("", 0), -1);
    ASSERT_EQ(INVALID_AT("plain ascii\n\t"), -1);
    ASSERT_EQ(INVALID_AT("Привет, мир! € 😀"), -1);
    ASSERT_EQ(INVALID_AT("\xed\x9f\xbf"), -1);     /* U+D7FF */
    ASSERT_EQ(INVALID_AT("\xee\x80\x80"), -1);     /* U+E000 */
    ASSERT_EQ(INVALID_AT("\xef\xbf\xbf"), -1);     /* U+FFFF */
    ASSERT_EQ(INVALID_AT("\xf4\x8f\xbf\xbf"), -1); /* U+10FFFF */
    ASSERT_EQ(INVALID_AT("\xc2\x80"), -1);         /* U+0080 */
    ASSERT_EQ(INVALID_AT("\xe0\xa0\x80"), -1);     /* U+0800 */
    ASSERT_EQ(INVALID_AT("\xf0\x90\x80\x80"), -1); /* U+10000 */
    /* len bounds the check: what follows does not matter. */
    ASSERT_EQ(ns_utf8_invalid_at("ok\xff", 2), -1);
}

TEST(utf8_invalid_input)
{
    ASSERT_EQ(INVALID_AT("\xff"), 0);
    ASSERT_EQ(INVALID_AT("ab\xfe"), 2);
    ASSERT_EQ(INVALID_AT("\x80"), 0); /* lone continuation byte */
    ASSERT_EQ(INVALID_AT("a\xbf"), 1);
    /* Overlong encodings ("/" and NUL in 2, 3 and 4 bytes). */
    ASSERT_EQ(INVALID_AT("\xc0\xaf"), 0);
    ASSERT_EQ(INVALID_AT("x\xc1\xbf"), 1);
    ASSERT_EQ(INVALID_AT("\xc0\x80"), 0);
    ASSERT_EQ(INVALID_AT("\xe0\x80\xaf"), 0);
    ASSERT_EQ(INVALID_AT("\xe0\x9f\xbf"), 0);
    ASSERT_EQ(INVALID_AT("\xf0\x80\x80\xaf"), 0);
    ASSERT_EQ(INVALID_AT("\xf0\x8f\xbf\xbf"), 0);
    /* UTF-16 surrogates, alone or as a CESU-8 pair. */
    ASSERT_EQ(INVALID_AT("\xed\xa0\x80"), 0);
    ASSERT_EQ(INVALID_AT("ok \xed\xbf\xbf"), 3);
    ASSERT_EQ(INVALID_AT("\xed\xa0\xbd\xed\xb8\x80"), 0);
    /* Above U+10FFFF, and bytes that never appear. */
    ASSERT_EQ(INVALID_AT("\xf4\x90\x80\x80"), 0);
    ASSERT_EQ(INVALID_AT("\xf5\x80\x80\x80"), 0);
    ASSERT_EQ(INVALID_AT("\xf8\x88\x80\x80\x80"), 0);
    /* Truncated sequences, at the end and in the middle. */
    ASSERT_EQ(INVALID_AT("abc\xe2\x82"), 3);
    ASSERT_EQ(INVALID_AT("abc\xf0\x9f\x98"), 3);
    ASSERT_EQ(INVALID_AT("\xc3"), 0);
    ASSERT_EQ(INVALID_AT("\xe2\x82z"), 0);
    ASSERT_EQ(INVALID_AT("\xf0\x9f\x98z"), 0);
    /* NUL breaks C strings and Postgres text. */
    ASSERT_EQ(INVALID_AT("a\0b"), 1);
    ASSERT_EQ(ns_utf8_invalid_at("\0", 1), 0);
}

/* Asserts that sanitizing in gives prefix, then one or more U+FFFD and
 * nothing else, then suffix, and that the result is valid. */
static void assert_sanitized(const char *in, size_t len, const char *prefix,
                             const char *suffix, int line)
{
    char *out = ns_utf8_sanitize(in, len);
    if (out == NULL)
        NSTEST_FAIL("line %d: sanitize returned NULL", line);
    size_t olen = strlen(out), plen = strlen(prefix), slen = strlen(suffix);
    if (ns_utf8_invalid_at(out, olen) != -1)
        NSTEST_FAIL("line %d: result is not valid UTF-8", line);
    if (olen < plen + 3 + slen || strncmp(out, prefix, plen) != 0 ||
        strcmp(out + olen - slen, suffix) != 0)
        NSTEST_FAIL("line %d: \"%s\" is not \"%s\" U+FFFD... \"%s\"", line, out,
                    prefix, suffix);
    for (size_t i = plen; i < olen - slen; i += 3)
        if (strncmp(out + i, "\xef\xbf\xbd", 3) != 0)
            NSTEST_FAIL("line %d: \"%s\" has more than U+FFFD between \"%s\" "
                        "and \"%s\"",
                        line, out, prefix, suffix);
    free(out);
}

#define ASSERT_SANITIZED(in, prefix, suffix)                                   \
    assert_sanitized((in), sizeof(in) - 1, (prefix), (suffix), __LINE__)

TEST(utf8_sanitize)
{
    char *s = ns_utf8_sanitize("Привет 😀", strlen("Привет 😀"));
    ASSERT_STREQ(s, "Привет 😀");
    free(s);
    s = ns_utf8_sanitize("", 0);
    ASSERT_STREQ(s, "");
    free(s);
    s = ns_utf8_sanitize("a\xff"
                         "b",
                         3);
    ASSERT_STREQ(s, "a\xef\xbf\xbd"
                    "b");
    free(s);
    s = ns_utf8_sanitize("\xff\xfe", 2);
    ASSERT_STREQ(s, "\xef\xbf\xbd\xef\xbf\xbd");
    free(s);

    ASSERT_SANITIZED("a\0b", "a", "b");
    ASSERT_SANITIZED("x\xc0\xafy", "x", "y");
    ASSERT_SANITIZED("\xe0\x80\xaf!", "", "!");
    ASSERT_SANITIZED("\xf0\x80\x80\xaf!", "", "!");
    ASSERT_SANITIZED("<\xed\xa0\x80>", "<", ">");
    ASSERT_SANITIZED("<\xed\xa0\xbd\xed\xb8\x80>", "<", ">");
    ASSERT_SANITIZED("<\xf4\x90\x80\x80>", "<", ">");
    ASSERT_SANITIZED("end\xe2\x82", "end", "");
    ASSERT_SANITIZED("end\xf0\x9f\x98", "end", "");
    ASSERT_SANITIZED("\xe2\x82\xe2\x82\xac", "", "€");
    ASSERT_SANITIZED("\x80\x80\x80ok", "", "ok");

    /* Worst case: every byte grows to 3. */
    char bad[1000];
    memset(bad, 0xff, sizeof(bad));
    s = ns_utf8_sanitize(bad, sizeof(bad));
    ASSERT_EQ(strlen(s), 3 * sizeof(bad));
    free(s);
}

/* ---- log redaction ---- */

TEST(log_redacts_every_occurrence)
{
    ns_log_add_secret("s3cr3t-t0ken");
    char *s = ns_log_redact("a s3cr3t-t0ken b s3cr3t-t0ken"
                            "s3cr3t-t0ken c s3cr3t-t0ke");
    ASSERT_STREQ(s, "a *** b ****** c s3cr3t-t0ke");
    free(s);
    ns_log_add_secret("hunter2!");
    ns_log_add_secret("hunter2!"); /* twice is once */
    s = ns_log_redact("pw=hunter2!&token=s3cr3t-t0ken");
    ASSERT_STREQ(s, "pw=***&token=***");
    free(s);
    s = ns_log_redact("nothing to hide");
    ASSERT_STREQ(s, "nothing to hide");
    free(s);
    s = ns_log_redact("");
    ASSERT_STREQ(s, "");
    free(s);
}

TEST(log_ignores_short_secrets)
{
    ns_log_add_secret(NULL);
    ns_log_add_secret("");
    ns_log_add_secret("a");
    ns_log_add_secret("abc");
    char *s = ns_log_redact("a abc abcd");
    ASSERT_STREQ(s, "a abc abcd");
    free(s);
    ns_log_add_secret("abcd"); /* 4 is enough */
    s = ns_log_redact("a abc abcd abcde");
    ASSERT_STREQ(s, "a abc *** ***e");
    free(s);
}

TEST(log_secret_inside_another)
{
    /* The shorter secret, registered first, must not leave the tail of
     * the longer one readable. */
    ns_log_add_secret("pass");
    ns_log_add_secret("password-of-the-db");
    char *s = ns_log_redact("dsn password-of-the-db pass");
    ASSERT_STREQ(s, "dsn *** ***");
    free(s);
}

/* Logs "words arg" with stderr sent to a file; returns what was written. */
static char *capture_log(const char *words, const char *arg)
{
    char path[] = "/tmp/ns-test-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    ASSERT(dup2(fd, 2) == 2);
    ns_logf(NS_LOG_ERROR, &(ns_log_ctx_t){.job = "batch-analyzer"}, "%s %s",
            words, arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *out = calloc(1, 4096);
    ASSERT(pread(fd, out, 4095, 0) > 0);
    close(fd);
    unlink(path);
    return out;
}

TEST(log_lines_are_redacted)
{
    ns_log_init("test", NS_LOG_INFO);
    ns_log_add_secret("sk-live-0123456789");
    char *line = capture_log("calling with key", "sk-live-0123456789");
    ASSERT(strstr(line, "sk-live") == NULL);
    ASSERT(strstr(line, "\"msg\":\"calling with key ***\"") != NULL);
    ASSERT(strstr(line, "\"job\":\"batch-analyzer\"") != NULL);
    free(line);
}

TEST(log_lines_redact_secrets_that_json_escapes)
{
    /* Passwords may hold quotes and backslashes, which the JSON line
     * escapes: the escaped form must not leak either. */
    const char *secret = "pa\"ss\\w0rd";
    ns_log_init("test", NS_LOG_INFO);
    ns_log_add_secret(secret);
    char *line = capture_log("connecting with", secret);
    ASSERT(strstr(line, "pa\\\"ss") == NULL);
    ASSERT(strstr(line, "w0rd") == NULL);
    ASSERT(strstr(line, "connecting with ***") != NULL);
    free(line);
}

/* ---- clock ---- */

static void write_clock(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(clock_honours_test_clock_file)
{
    char path[] = "/tmp/ns-test-clock-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_EQ(setenv("NS_TEST_CLOCK_FILE", path, 1), 0);
    write_clock(path, "1700000000.5\n");
    ASSERT_EQ(ns_clock_now_ms(), 1700000000500LL);
    /* Tests move time by rewriting the file. */
    write_clock(path, "1700000060");
    ASSERT_EQ(ns_clock_now_ms(), 1700000060000LL);
    write_clock(path, "1700000000.123");
    ASSERT_EQ(ns_clock_now_ms(), 1700000000123LL);
    write_clock(path, "1700000000.999");
    ASSERT_EQ(ns_clock_now_ms(), 1700000000999LL);

    /* Unreadable contents, a missing file or an empty name: real time. */
    int64_t t0 = (int64_t)time(NULL) * 1000;
    write_clock(path, "not a number");
    int64_t now = ns_clock_now_ms();
    ASSERT(now >= t0 - 1000 && now <= t0 + 5000);
    unlink(path);
    now = ns_clock_now_ms();
    ASSERT(now >= t0 - 1000 && now <= t0 + 5000);
    ASSERT_EQ(setenv("NS_TEST_CLOCK_FILE", "", 1), 0);
    now = ns_clock_now_ms();
    ASSERT(now >= t0 - 1000 && now <= t0 + 5000);
    unsetenv("NS_TEST_CLOCK_FILE");

    char when[40];
    ns_clock_format_utc(1700000000500LL, when, sizeof(when));
    ASSERT_STREQ(when, "2023-11-14T22:13:20.500Z");
}

TEST(clock_mono_is_monotonic)
{
    int64_t a = ns_clock_mono_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int64_t b = ns_clock_mono_ms();
    ASSERT(b - a >= 19);
}

NSTEST_MAIN
