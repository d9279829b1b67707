/* test_envelope.c: the item message on the wire: encoding, compression and
 * every reason a decode rejects its input. */
#include "ns/envelope.h"

#include <sys/resource.h>
#include <zstd.h>

#include "ns/buf.h"
#include "nstest.h"

#define MiB ((size_t)1 << 20)

#if defined(__SANITIZE_ADDRESS__)
#define NS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NS_UNDER_ASAN 1
#endif
#endif

/* Decodes text (no compression, 1 MiB limit), expecting a rejection whose
 * message starts with prefix. The envelope is freed afterwards. */
#define ASSERT_REJECTS(text, prefix)                                           \
    assert_rejects_len((text), strlen(text), (prefix), __LINE__)

static void assert_rejects_len(const char *data, size_t len, const char *prefix,
                               int line)
{
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ns_err_t rc = ns_envelope_decode(data, len, false, MiB, &env, &err);
    if (rc != NS_ERR_PERMANENT || err.code != NS_ERR_PERMANENT)
        NSTEST_FAIL("line %d: decode returned %s (%s), expected permanent",
                    line, ns_err2str(rc), err.msg);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        NSTEST_FAIL("line %d: message \"%s\" does not start with \"%s\"", line,
                    err.msg, prefix);
    if (env.payload != NULL)
        NSTEST_FAIL("line %d: payload set after a failure", line);
    ns_envelope_free(&env);
}

/* A valid envelope with one field replaced (or left out when value is
 * NULL); field is one of the envelope's keys. */
static char *envelope_with(const char *field, const char *value)
{
    static const char *const keys[] = {
        "v", "job", "run_id", "item_key", "attempt", "dry_run", "payload"};
    static const char *const values[] = {
        "1",     "\"stopwords.count\"", "42", "\"doc-7\"", "2",
        "false", "{\"lang\":\"en\"}"};
    ns_buf_t b;
    ns_buf_init(&b, MiB);
    ns_buf_adds(&b, "{");
    int first = 1;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = values[i];
        if (strcmp(keys[i], field) == 0)
            v = value;
        if (v == NULL)
            continue;
        ns_buf_addf(&b, "%s\"%s\":%s", first ? "" : ",", keys[i], v);
        first = 0;
    }
    ns_buf_adds(&b, "}");
    return ns_buf_take(&b);
}

static void assert_field_rejected(const char *field, const char *value,
                                  const char *prefix, int line)
{
    char *text = envelope_with(field, value);
    assert_rejects_len(text, strlen(text), prefix, line);
    free(text);
}

#define ASSERT_FIELD_REJECTED(field, value, prefix)                            \
    assert_field_rejected((field), (value), (prefix), __LINE__)

static ns_envelope_t sample(cJSON *payload)
{
    ns_envelope_t env = {.v = 1,
                         .job = "stopwords.count",
                         .run_id = 123456789,
                         .item_key = "shard/0007",
                         .attempt = 3,
                         .dry_run = true,
                         .payload = payload};
    return env;
}

/* Encodes env and decodes the bytes back, asserting every field survives.
 * @returns whether the bytes were compressed. */
static bool round_trip(const ns_envelope_t *env, size_t max_len)
{
    char *bytes = NULL;
    size_t len = 0;
    bool compressed = false;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_envelope_encode(env, &bytes, &len, &compressed, &err), NS_OK);
    ASSERT(bytes != NULL && len > 0);

    ns_envelope_t got;
    ns_err_t rc =
        ns_envelope_decode(bytes, len, compressed, max_len, &got, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("decode: %s", err.msg);
    ASSERT_EQ(got.v, NS_ENVELOPE_VERSION);
    ASSERT_STREQ(got.job, env->job);
    ASSERT_EQ(got.run_id, env->run_id);
    ASSERT_STREQ(got.item_key, env->item_key);
    ASSERT_EQ(got.attempt, env->attempt);
    ASSERT_EQ(got.dry_run, env->dry_run);
    ASSERT(cJSON_Compare(got.payload, env->payload, 1));
    ns_envelope_free(&got);
    ASSERT(got.job == NULL && got.payload == NULL);
    free(bytes);
    return compressed;
}

TEST(round_trip_small)
{
    cJSON *payload = cJSON_Parse("{\"lang\":\"ru\",\"ids\":[1,2,3],"
                                 "\"text\":\"Привет 😀\",\"n\":null}");
    ASSERT(payload != NULL);
    ns_envelope_t env = sample(payload);
    ASSERT(!round_trip(&env, MiB));
    env.dry_run = false;
    env.attempt = 1;
    ASSERT(!round_trip(&env, MiB));
    cJSON_Delete(payload);
}

TEST(round_trip_large_is_compressed)
{
    /* 200 KiB of text that is not one repeated byte. */
    ns_buf_t b;
    ns_buf_init(&b, MiB);
    for (int i = 0; b.len < 200 * 1024; i++)
        ns_buf_addf(&b, "word%d ", i);
    cJSON *payload = cJSON_CreateObject();
    cJSON_AddStringToObject(payload, "corpus", b.data);
    ns_buf_free(&b);
    ns_envelope_t env = sample(payload);
    ASSERT(round_trip(&env, MiB));
    cJSON_Delete(payload);
}

TEST(just_below_compression_threshold_is_plain)
{
    cJSON *payload = cJSON_CreateObject();
    char *text = malloc(NS_ENVELOPE_COMPRESS_AT - 300);
    memset(text, 'x', NS_ENVELOPE_COMPRESS_AT - 301);
    text[NS_ENVELOPE_COMPRESS_AT - 301] = '\0';
    cJSON_AddStringToObject(payload, "text", text);
    free(text);
    ns_envelope_t env = sample(payload);
    ASSERT(!round_trip(&env, MiB));
    cJSON_Delete(payload);
}

TEST(defaults_for_optional_fields)
{
    /* No attempt: the first. No dry_run: a real run. */
    char *no_attempt = envelope_with("attempt", NULL);
    char *no_dry = envelope_with("dry_run", NULL);
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_envelope_decode(no_attempt, strlen(no_attempt), false, MiB,
                                 &env, &err),
              NS_OK);
    ASSERT_EQ(env.attempt, 1);
    ns_envelope_free(&env);
    ASSERT_EQ(
        ns_envelope_decode(no_dry, strlen(no_dry), false, MiB, &env, &err),
        NS_OK);
    ASSERT_EQ(env.dry_run, false);
    ASSERT_EQ(env.attempt, 2);
    ns_envelope_free(&env);
    ns_envelope_free(NULL);
    free(no_attempt);
    free(no_dry);
}

TEST(rejects_over_max_len)
{
    char *text = envelope_with("v", "1");
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    size_t len = strlen(text);
    ASSERT_EQ(ns_envelope_decode(text, len, false, len - 1, &env, &err),
              NS_ERR_PERMANENT);
    char want[128];
    snprintf(want, sizeof(want),
             "bad input: message of %zu bytes exceeds the limit of %zu", len,
             len - 1);
    ASSERT_STREQ(err.msg, want);
    ASSERT(env.job == NULL && env.payload == NULL);
    /* Exactly max_len is fine. */
    ASSERT_EQ(ns_envelope_decode(text, len, false, len, &env, &err), NS_OK);
    ns_envelope_free(&env);
    free(text);
}

TEST(rejects_invalid_utf8_and_nul)
{
    ASSERT_REJECTS("{\"v\":1,\"job\":\"\xff\"}",
                   "bad input: invalid UTF-8 at byte 14");
    /* Overlong '/', a UTF-16 surrogate, a truncated sequence. */
    ASSERT_REJECTS("{\"x\":\"\xc0\xaf\"}",
                   "bad input: invalid UTF-8 at byte 6");
    ASSERT_REJECTS("{\"x\":\"\xed\xa0\x80\"}",
                   "bad input: invalid UTF-8 at byte 6");
    ASSERT_REJECTS("{\"x\":\"\xe2\x82", "bad input: invalid UTF-8 at byte 6");
    const char with_nul[] = "{\"v\":1,\"job\":\"a\0b\"}";
    assert_rejects_len(with_nul, sizeof(with_nul) - 1,
                       "bad input: invalid UTF-8 at byte 15", __LINE__);
    /* A NUL after a complete object is no way to smuggle a prefix. */
    char *ok = envelope_with("v", "1");
    size_t len = strlen(ok);
    assert_rejects_len(ok, len + 1, "bad input: invalid UTF-8 at byte",
                       __LINE__);
    free(ok);
}

TEST(rejects_malformed_json)
{
    ASSERT_REJECTS("", "bad input: malformed JSON");
    ASSERT_REJECTS("{\"v\":1,", "bad input: malformed JSON");
    ASSERT_REJECTS("{v:1}", "bad input: malformed JSON");
    ASSERT_REJECTS("not json", "bad input: malformed JSON");
}

TEST(rejects_non_object)
{
    ASSERT_REJECTS("[1,2,3]", "bad input: envelope is not a JSON object");
    ASSERT_REJECTS("\"v\"", "bad input: envelope is not a JSON object");
    ASSERT_REJECTS("42", "bad input: envelope is not a JSON object");
    ASSERT_REJECTS("null", "bad input: envelope is not a JSON object");
}

TEST(rejects_missing_or_unsupported_version)
{
    ASSERT_FIELD_REJECTED("v", NULL, "bad input: envelope has no version");
    ASSERT_FIELD_REJECTED("v", "\"1\"", "bad input: envelope has no version");
    ASSERT_FIELD_REJECTED("v", "2",
                          "bad input: unsupported envelope version 2 ");
    ASSERT_FIELD_REJECTED("v", "0",
                          "bad input: unsupported envelope version 0 ");
    ASSERT_FIELD_REJECTED("v", "1.5",
                          "bad input: unsupported envelope version 1.5 ");
}

TEST(rejects_missing_job)
{
    const char *want = "bad input: envelope field \"job\" missing or not a "
                       "string";
    ASSERT_FIELD_REJECTED("job", NULL, want);
    ASSERT_FIELD_REJECTED("job", "\"\"", want);
    ASSERT_FIELD_REJECTED("job", "7", want);
    ASSERT_FIELD_REJECTED("job", "null", want);
}

TEST(rejects_bad_run_id)
{
    const char *want = "bad input: envelope field \"run_id\" missing or not "
                       "a positive integer";
    ASSERT_FIELD_REJECTED("run_id", NULL, want);
    ASSERT_FIELD_REJECTED("run_id", "0", want);
    ASSERT_FIELD_REJECTED("run_id", "-3", want);
    ASSERT_FIELD_REJECTED("run_id", "1.5", want);
    ASSERT_FIELD_REJECTED("run_id", "\"42\"", want);
    ASSERT_FIELD_REJECTED("run_id", "1e300", want);
}

TEST(rejects_bad_item_key)
{
    const char *want = "bad input: envelope field \"item_key\" missing, "
                       "empty or longer than 512 bytes";
    ASSERT_FIELD_REJECTED("item_key", NULL, want);
    ASSERT_FIELD_REJECTED("item_key", "\"\"", want);
    ASSERT_FIELD_REJECTED("item_key", "17", want);

    char key[NS_ITEM_KEY_MAX + 4];
    key[0] = '"';
    memset(key + 1, 'k', NS_ITEM_KEY_MAX + 1);
    key[NS_ITEM_KEY_MAX + 2] = '"';
    key[NS_ITEM_KEY_MAX + 3] = '\0';
    ASSERT_FIELD_REJECTED("item_key", key, want); /* 513 bytes */

    /* 512 bytes is the longest accepted. */
    key[NS_ITEM_KEY_MAX + 1] = '"';
    key[NS_ITEM_KEY_MAX + 2] = '\0';
    char *text = envelope_with("item_key", key);
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_envelope_decode(text, strlen(text), false, MiB, &env, &err),
              NS_OK);
    ASSERT_EQ(strlen(env.item_key), NS_ITEM_KEY_MAX);
    ns_envelope_free(&env);
    free(text);
}

TEST(rejects_bad_attempt_and_dry_run)
{
    ASSERT_FIELD_REJECTED("attempt", "\"2\"",
                          "bad input: envelope field \"attempt\" is not a "
                          "number");
    ASSERT_FIELD_REJECTED("attempt", "null",
                          "bad input: envelope field \"attempt\" is not a "
                          "number");
    ASSERT_FIELD_REJECTED("dry_run", "\"true\"",
                          "bad input: envelope field \"dry_run\" is not a "
                          "boolean");
    ASSERT_FIELD_REJECTED("dry_run", "1",
                          "bad input: envelope field \"dry_run\" is not a "
                          "boolean");
}

TEST(rejects_bad_payload)
{
    const char *want = "bad input: envelope field \"payload\" missing or not "
                       "an object";
    ASSERT_FIELD_REJECTED("payload", NULL, want);
    ASSERT_FIELD_REJECTED("payload", "[]", want);
    ASSERT_FIELD_REJECTED("payload", "[{\"a\":1}]", want);
    ASSERT_FIELD_REJECTED("payload", "\"x\"", want);
    ASSERT_FIELD_REJECTED("payload", "null", want);
}

TEST(identity_kept_after_later_failure)
{
    char *text = envelope_with("payload", "[1]");
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_envelope_decode(text, strlen(text), false, MiB, &env, &err),
              NS_ERR_PERMANENT);
    ASSERT(strstr(err.msg, "payload") != NULL);
    ASSERT_STREQ(env.job, "stopwords.count");
    ASSERT_EQ(env.run_id, 42);
    ASSERT_STREQ(env.item_key, "doc-7");
    ASSERT(env.payload == NULL);
    ns_envelope_free(&env);
    free(text);

    /* An unsupported version still names the item. */
    text = envelope_with("v", "2");
    ASSERT_EQ(ns_envelope_decode(text, strlen(text), false, MiB, &env, &err),
              NS_ERR_PERMANENT);
    ASSERT_STREQ(env.job, "stopwords.count");
    ASSERT_EQ(env.run_id, 42);
    ASSERT_STREQ(env.item_key, "doc-7");
    ns_envelope_free(&env);
    free(text);
}

/* zstd-compresses len bytes of src; content size in the frame header
 * unless streamed. @returns malloc'd frame of *zlen bytes. */
static char *zstd_frame(const void *src, size_t len, bool with_size,
                        size_t *zlen)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ASSERT(cctx != NULL);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, with_size ? 1 : 0);
    size_t cap = ZSTD_compressBound(len);
    char *z = malloc(cap);
    ASSERT(z != NULL);
    size_t n = ZSTD_compress2(cctx, z, cap, src, len);
    ASSERT(!ZSTD_isError(n));
    ZSTD_freeCCtx(cctx);
    char *small = malloc(n);
    memcpy(small, z, n);
    free(z);
    *zlen = n;
    return small;
}

static void decode_compressed_expect(const char *z, size_t zlen, size_t max_len,
                                     const char *prefix)
{
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ns_err_t rc = ns_envelope_decode(z, zlen, true, max_len, &env, &err);
    if (rc != NS_ERR_PERMANENT)
        NSTEST_FAIL("decode returned %s: %s", ns_err2str(rc), err.msg);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        NSTEST_FAIL("message \"%s\" does not start with \"%s\"", err.msg,
                    prefix);
    ASSERT(env.job == NULL && env.payload == NULL);
    ns_envelope_free(&env);
}

/* Caps this (forked) process's address space a little above its current
 * size, so that an allocation of the bomb's size would fail. AddressSanitizer
 * reserves terabytes of shadow memory, so there the cap is skipped. */
static void cap_address_space(size_t headroom)
{
#ifdef NS_UNDER_ASAN
    (void)headroom;
#else
    FILE *f = fopen("/proc/self/statm", "r");
    ASSERT(f != NULL);
    unsigned long pages = 0;
    ASSERT(fscanf(f, "%lu", &pages) == 1);
    fclose(f);
    size_t now = pages * (size_t)sysconf(_SC_PAGESIZE);
    struct rlimit rl = {now + headroom, now + headroom};
    ASSERT_EQ(setrlimit(RLIMIT_AS, &rl), 0);
#endif
}

TEST(rejects_decompression_bomb)
{
    size_t big = 50 * MiB;
    char *zeros = calloc(1, big);
    ASSERT(zeros != NULL);
    size_t zlen = 0, slen = 0;
    char *bomb = zstd_frame(zeros, big, true, &zlen);
    char *streamed = zstd_frame(zeros, big, false, &slen);
    free(zeros);
    ASSERT(zlen < 64 * 1024);
    ASSERT_EQ(ZSTD_getFrameContentSize(bomb, zlen), big);

    /* The header claims 50 MB and lies about it: it says 100. */
    char *liar = malloc(zlen);
    memcpy(liar, bomb, zlen);
    unsigned char fhd = (unsigned char)liar[4];
    ASSERT_EQ(fhd >> 6, 2); /* a 4-byte frame content size field */
    size_t fcs_at = 5 + ((fhd & 0x20) ? 0 : 1) +
                    (size_t)((const int[]){0, 1, 2, 4})[fhd & 3];
    liar[fcs_at] = 100;
    liar[fcs_at + 1] = liar[fcs_at + 2] = liar[fcs_at + 3] = 0;
    ASSERT_EQ(ZSTD_getFrameContentSize(liar, zlen), 100);

    cap_address_space(16 * MiB);
    decode_compressed_expect(bomb, zlen, MiB,
                             "bad input: payload of 52428800 bytes after "
                             "decompression exceeds the limit of 1048576");
    decode_compressed_expect(streamed, slen, MiB,
                             "bad input: zstd header is not a sized frame");
    decode_compressed_expect(liar, zlen, MiB, "bad input: zstd: ");
    free(bomb);
    free(streamed);
    free(liar);
}

TEST(rejects_compressed_over_limit_after_decompression)
{
    cJSON *payload = cJSON_CreateObject();
    char *text = malloc(100 * 1024);
    memset(text, 'y', 100 * 1024 - 1);
    text[100 * 1024 - 1] = '\0';
    cJSON_AddStringToObject(payload, "text", text);
    free(text);
    ns_envelope_t env = sample(payload);
    char *bytes;
    size_t len;
    bool compressed;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_envelope_encode(&env, &bytes, &len, &compressed, &err), NS_OK);
    ASSERT(compressed);
    ASSERT(len < 64 * 1024);
    decode_compressed_expect(bytes, len, 64 * 1024, "bad input: payload of ");
    free(bytes);
    cJSON_Delete(payload);
}

TEST(rejects_garbage_marked_compressed)
{
    const char *garbage = "{\"v\":1} this is not zstd at all";
    decode_compressed_expect(garbage, strlen(garbage), MiB,
                             "bad input: zstd header is not a sized frame");
    decode_compressed_expect("", 0, MiB,
                             "bad input: zstd header is not a sized frame");

    /* A real frame cut short, and one with its body scrambled. */
    char *plain = envelope_with("v", "1");
    size_t zlen;
    char *z = zstd_frame(plain, strlen(plain), true, &zlen);
    decode_compressed_expect(z, zlen - 3, MiB, "bad input: zstd: ");
    for (size_t i = 8; i < zlen; i++)
        z[i] = (char)(z[i] ^ 0x5a);
    decode_compressed_expect(z, zlen, MiB, "bad input: zstd: ");
    free(z);

    /* Valid zstd around invalid content is judged like plain input. */
    const char *bad = "{\"v\":1,\"job\":\"\xff\"}";
    z = zstd_frame(bad, strlen(bad), true, &zlen);
    decode_compressed_expect(z, zlen, MiB,
                             "bad input: invalid UTF-8 at byte 14");
    free(z);
    free(plain);
}

/* The planner's envelope (payload spliced in as text) is the document
 * ns_envelope_encode writes, and decodes to the same fields, whatever the
 * key and the job name hold. */
TEST(format_matches_encode_for_hostile_keys)
{
    static const char *const keys[] = {
        "plain-1",
        "quote\"back\\slash",
        "tab\tnl\ncr\r",
        "ctl\x01\x1f",
        "</script><img src=x onerror=alert(1)>",
        "=HYPERLINK(\"x\")",
        "\xc3\xa9t\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
        "' OR 1=1 --"};
    const char *job = "job \"with\" quotes\\";
    const char *payload = "{\"id\": 7, \"name\": \"a\\\"b\", \"n\": [1, 2]}";
    char *job_json = ns_envelope_json_string(job);
    ASSERT(job_json != NULL);
    ns_buf_t b;
    ns_buf_init(&b, MiB);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ASSERT_EQ(ns_envelope_format(&b, job_json, 123456789012LL, keys[i], 3,
                                     i % 2 == 0, payload, strlen(payload)),
                  NS_OK);
        ns_envelope_t env;
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_envelope_decode(b.data, b.len, false, MiB, &env, &err) != NS_OK)
            NSTEST_FAIL("key %zu: %s in %s", i, err.msg, b.data);
        ASSERT_STREQ(env.job, job);
        ASSERT_STREQ(env.item_key, keys[i]);
        ASSERT_EQ(env.run_id, 123456789012LL);
        ASSERT_EQ(env.attempt, 3);
        ASSERT_EQ(env.dry_run, i % 2 == 0);
        ASSERT_EQ(cJSON_GetObjectItem(env.payload, "id")->valueint, 7);
        ASSERT_STREQ(cJSON_GetObjectItem(env.payload, "name")->valuestring,
                     "a\"b");
        /* Byte for byte what the encoder writes (payload printed alike). */
        char *enc = NULL;
        size_t enc_len = 0;
        bool compressed = true;
        ASSERT_EQ(ns_envelope_encode(&env, &enc, &enc_len, &compressed, &err),
                  NS_OK);
        ASSERT(!compressed);
        char *printed = cJSON_PrintUnformatted(env.payload);
        ns_buf_t again;
        ns_buf_init(&again, MiB);
        ASSERT_EQ(ns_envelope_format(&again, job_json, env.run_id, keys[i], 3,
                                     i % 2 == 0, printed, strlen(printed)),
                  NS_OK);
        ASSERT_EQ(again.len, enc_len);
        ASSERT(memcmp(again.data, enc, enc_len) == 0);
        ns_buf_free(&again);
        free(printed);
        free(enc);
        ns_envelope_free(&env);
    }
    /* A key too long for the stack buffer's escape still comes out right. */
    char long_key[NS_ITEM_KEY_MAX + 1];
    memset(long_key, '\x01', NS_ITEM_KEY_MAX);
    long_key[NS_ITEM_KEY_MAX] = '\0';
    ASSERT_EQ(ns_envelope_format(&b, job_json, 1, long_key, 1, false, "{}", 2),
              NS_OK);
    ns_envelope_t env;
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_envelope_decode(b.data, b.len, false, MiB, &env, &err), NS_OK);
    ASSERT_STREQ(env.item_key, long_key);
    ns_envelope_free(&env);
    ns_buf_free(&b);
    free(job_json);
}

NSTEST_MAIN
