/* test_ratelimit.c: the shared token bucket against the real Redis of
 * tests/stack.sh (NS_REDIS_URL). Timing is measured with the real clock
 * and asserted loosely: this checks correctness, it is not a benchmark.
 * Exits 77 (skipped) when NS_REDIS_URL is unset. */
#include "nstest.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/ratelimit.h"

static const char *redis_url(void)
{
    return getenv("NS_REDIS_URL");
}

/* A bucket name of this process only, so runs never share state. */
static const char *bucket(const char *name)
{
    static char buf[8][96];
    static int next;
    char *out = buf[next++ % 8];
    snprintf(out, sizeof(buf[0]), "it-%ld-%s", (long)getpid(), name);
    return out;
}

static ns_ratelimit_t *limiter(void)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new(redis_url(), &err);
    if (rl == NULL)
        NSTEST_FAIL("ns_ratelimit_new: %s", err.msg);
    return rl;
}

static int64_t take(ns_ratelimit_t *rl, const char *b, double rate,
                    double burst)
{
    ns_error_t err;
    ns_error_clear(&err);
    int64_t wait_ms = -1;
    ns_err_t rc = ns_ratelimit_take(rl, b, rate, burst, 1, &wait_ms, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("take %s: %s", b, err.msg);
    return wait_ms;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A plain connection to the stack's Redis ("redis://host:port/db"), to look
 * at keys and break things behind the limiter's back. */
static redisContext *raw_redis(void)
{
    char host[128] = "";
    int port = 0, db = 0;
    if (sscanf(redis_url(), "redis://%127[^:]:%d/%d", host, &port, &db) < 2)
        NSTEST_FAIL("cannot read NS_REDIS_URL \"%s\"", redis_url());
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err != 0)
        NSTEST_FAIL("connect %s: %s", redis_url(), c ? c->errstr : "nomem");
    return c;
}

static long long raw_int(redisContext *c, const char *cmd, const char *arg)
{
    redisReply *r = redisCommand(c, cmd, arg);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        NSTEST_FAIL("%s %s: %s", cmd, arg,
                    r == NULL ? c->errstr : (r->str ? r->str : "?"));
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void raw_ok(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        NSTEST_FAIL("%s: %s", cmd, r == NULL ? c->errstr : r->str);
    freeReplyObject(r);
}

TEST(burst_then_wait)
{
    ns_ratelimit_t *rl = limiter();
    const char *b = bucket("burst");
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(take(rl, b, 2, 5), 0);
    int64_t wait_ms = take(rl, b, 2, 5);
    /* One token at 2/s is 500 ms away (less the time the takes took). */
    ASSERT(wait_ms >= 250 && wait_ms <= 500);

    ns_error_t err;
    ns_error_clear(&err);
    int64_t t0 = ns_clock_mono_ms();
    ASSERT_EQ(ns_ratelimit_wait(rl, b, 2, 5, 5000, NULL, &err), NS_OK);
    int64_t waited = ns_clock_mono_ms() - t0;
    if (waited < 200 || waited > 1500)
        NSTEST_FAIL("waited %lld ms for a token 500 ms away",
                    (long long)waited);
    ns_ratelimit_destroy(rl);
}

TEST(refill_rate)
{
    ns_ratelimit_t *rl = limiter();
    const char *b = bucket("refill");
    /* Drain: the burst, plus whatever refills while we drain (on a busy
     * machine the takes themselves take a while). */
    int64_t t0 = ns_clock_mono_ms();
    int drained = 0;
    while (take(rl, b, 50, 20) == 0 && drained < 1000)
        drained++;
    int64_t elapsed = ns_clock_mono_ms() - t0;
    if (drained < 20 || drained > 20 + elapsed * 50 / 1000 + 1)
        NSTEST_FAIL("drained %d tokens in %lld ms, burst 20 at 50/s", drained,
                    (long long)elapsed);
    t0 = ns_clock_mono_ms();
    sleep_ms(200);
    int granted = 0;
    while (take(rl, b, 50, 20) == 0 && granted < 1000)
        granted++;
    elapsed = ns_clock_mono_ms() - t0;
    /* 50/s for >= 200 ms is >= 10 tokens (whole ones, less one partly
     * refilled at the start), and not more than the time allows. */
    if (granted < 9 || granted > elapsed * 50 / 1000 + 1)
        NSTEST_FAIL("%d tokens after %lld ms at 50/s", granted,
                    (long long)elapsed);
    ns_ratelimit_destroy(rl);
}

TEST(buckets_are_independent)
{
    ns_ratelimit_t *rl = limiter();
    const char *a = bucket("a"), *b = bucket("b");
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(take(rl, a, 1, 3), 0);
    ASSERT(take(rl, a, 1, 3) > 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(take(rl, b, 1, 3), 0);
    ASSERT(take(rl, b, 1, 3) > 0);
    ASSERT(take(rl, a, 1, 3) > 0);
    ns_ratelimit_destroy(rl);
}

TEST(takes_several_tokens_or_none)
{
    ns_ratelimit_t *rl = limiter();
    const char *b = bucket("multi");
    ns_error_t err;
    ns_error_clear(&err);
    int64_t wait_ms = -1;
    ASSERT_EQ(ns_ratelimit_take(rl, b, 1, 10, 7, &wait_ms, &err), NS_OK);
    ASSERT_EQ(wait_ms, 0);
    /* 3 left: 5 are 2 s away, and nothing is taken meanwhile. */
    ASSERT_EQ(ns_ratelimit_take(rl, b, 1, 10, 5, &wait_ms, &err), NS_OK);
    ASSERT(wait_ms > 1500 && wait_ms <= 2000);
    ASSERT_EQ(ns_ratelimit_take(rl, b, 1, 10, 3, &wait_ms, &err), NS_OK);
    ASSERT_EQ(wait_ms, 0);
    ns_ratelimit_destroy(rl);
}

struct hammer {
    ns_ratelimit_t *rl;
    const char *bucket;
    int64_t end_ms;
    int granted;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    ns_error_t err;
    for (;;) {
        int64_t left = h->end_ms - ns_clock_mono_ms();
        if (left <= 0)
            break;
        ns_error_clear(&err);
        ns_err_t rc =
            ns_ratelimit_wait(h->rl, h->bucket, 200, 20, left, NULL, &err);
        if (rc == NS_OK && ns_clock_mono_ms() <= h->end_ms)
            h->granted++;
        else if (rc != NS_OK && rc != NS_ERR_TRANSIENT)
            NSTEST_FAIL("wait: %s", err.msg);
    }
    return NULL;
}

TEST(four_threads_share_one_rate)
{
    ns_ratelimit_t *rl = limiter();
    struct hammer h[4];
    pthread_t tid[4];
    int64_t end = ns_clock_mono_ms() + 2000;
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){rl, bucket("hammer"), end, 0};
        ASSERT_EQ(pthread_create(&tid[i], NULL, hammer_thread, &h[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        total += h[i].granted;
        /* Nobody starves completely. */
        ASSERT(h[i].granted > 0);
    }
    /* 200/s for 2 s plus the initial burst of 20. */
    printf("  4 threads, 200/s burst 20, 2 s: %d grants (expected 420)\n",
           total);
    if (total < 378 || total > 462)
        NSTEST_FAIL("%d grants, expected 420 +- 10%%", total);
    ns_ratelimit_destroy(rl);
}

TEST(wait_gives_up_beyond_max_wait)
{
    ns_ratelimit_t *rl = limiter();
    const char *b = bucket("maxwait");
    ASSERT_EQ(take(rl, b, 1, 1), 0);
    ns_error_t err;
    ns_error_clear(&err);
    int64_t t0 = ns_clock_mono_ms();
    ASSERT_EQ(ns_ratelimit_wait(rl, b, 1, 1, 100, NULL, &err),
              NS_ERR_TRANSIENT);
    ASSERT_EQ(err.code, NS_ERR_TRANSIENT);
    ASSERT(err.retry_after_s > 0.5 && err.retry_after_s <= 1.0);
    ASSERT(ns_clock_mono_ms() - t0 < 500); /* gave up without sleeping */
    /* max_wait 0: a pure try. */
    ns_error_clear(&err);
    ASSERT_EQ(ns_ratelimit_wait(rl, b, 1, 1, 0, NULL, &err), NS_ERR_TRANSIENT);
    ASSERT(err.retry_after_s > 0);
    ns_ratelimit_destroy(rl);
}

TEST(wait_stops_when_told)
{
    ns_ratelimit_t *rl = limiter();
    const char *b = bucket("stop");
    ASSERT_EQ(take(rl, b, 0.1, 1), 0);
    volatile sig_atomic_t running = 0;
    ns_error_t err;
    ns_error_clear(&err);
    int64_t t0 = ns_clock_mono_ms();
    ASSERT_EQ(ns_ratelimit_wait(rl, b, 0.1, 1, -1, &running, &err),
              NS_ERR_TRANSIENT);
    ASSERT(ns_clock_mono_ms() - t0 < 1000);
    ASSERT(err.retry_after_s > 5);
    ns_ratelimit_destroy(rl);
}

TEST(unreachable_redis_fails_open)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new("redis://127.0.0.1:1", &err);
    ASSERT(rl != NULL);
    int64_t t0 = ns_clock_mono_ms();
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(take(rl, bucket("open"), 1, 1), 0);
    ASSERT_EQ(ns_ratelimit_wait(rl, bucket("open"), 1, 1, 0, NULL, &err),
              NS_OK);
    ASSERT(ns_clock_mono_ms() - t0 < 1000);
    ns_ratelimit_destroy(rl);
}

TEST(refused_credentials_stop_a_deploy)
{
    /* The stack's Redis has no password: AUTH is an error reply. */
    char url[256];
    const char *hostport = redis_url() + strlen("redis://");
    snprintf(url, sizeof(url), "redis://:wrong-secret@%s", hostport);
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT(ns_ratelimit_new(url, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    ASSERT(strstr(err.msg, "AUTH") != NULL);
    ASSERT(strstr(err.msg, "wrong-secret") == NULL);
}

/* An ACL user whose password needs %-encoding in the URL. */
TEST(acl_user_with_encoded_password)
{
    redisContext *c = raw_redis();
    char user[64], url[256];
    snprintf(user, sizeof(user), "ns-rl-it-%ld", (long)getpid());
    redisReply *r =
        redisCommand(c, "ACL SETUSER %s on >p@ss/w:rd ~* +@all", user);
    ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    const char *hostport = redis_url() + strlen("redis://");
    snprintf(url, sizeof(url), "redis://%s:p%%40ss%%2Fw%%3Ard@%s", user,
             hostport);
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new(url, &err);
    if (rl == NULL)
        NSTEST_FAIL("%s", err.msg);
    const char *b = bucket("acl");
    ASSERT_EQ(take(rl, b, 1, 1), 0);
    ASSERT(take(rl, b, 1, 1) > 0); /* limited: really connected */
    ns_ratelimit_destroy(rl);
    snprintf(url, sizeof(url), "redis://%s:p%%40ss@%s", user, hostport);
    ASSERT(ns_ratelimit_new(url, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    raw_int(c, "ACL DELUSER %s", user);
    redisFree(c);
}

TEST(idle_key_expires)
{
    ns_ratelimit_t *rl = limiter();
    redisContext *c = raw_redis();
    const char *b = bucket("expire");
    char key[128];
    snprintf(key, sizeof(key), "ns:rl:%s", b);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(take(rl, b, 10, 10), 0);
    /* 5 tokens short at 10/s: full again, and gone, within 500 ms. */
    long long pttl = raw_int(c, "PTTL %s", key);
    if (pttl <= 0 || pttl > 500)
        NSTEST_FAIL("PTTL %s = %lld, expected 1..500", key, pttl);
    sleep_ms(700);
    ASSERT_EQ(raw_int(c, "EXISTS %s", key), 0);
    /* A missing key is a full bucket: one take leaves exactly 9. */
    ASSERT_EQ(take(rl, b, 10, 10), 0);
    redisReply *r = redisCommand(c, "HGET %s level", key);
    ASSERT(r != NULL && r->type == REDIS_REPLY_STRING);
    ASSERT_STREQ(r->str, "9");
    freeReplyObject(r);
    redisFree(c);
    ns_ratelimit_destroy(rl);
}

TEST(selects_the_db)
{
    char url[256];
    snprintf(url, sizeof(url), "%s", redis_url());
    char *slash = strrchr(url, '/');
    ASSERT(slash != NULL && slash > url + strlen("redis://"));
    snprintf(slash, sizeof(url) - (size_t)(slash - url), "/5");
    ns_error_t err;
    ns_error_clear(&err);
    ns_ratelimit_t *rl = ns_ratelimit_new(url, &err);
    ASSERT(rl != NULL);
    const char *b = bucket("db5");
    ASSERT_EQ(take(rl, b, 1, 2), 0);
    char key[128];
    snprintf(key, sizeof(key), "ns:rl:%s", b);
    redisContext *c = raw_redis();
    ASSERT_EQ(raw_int(c, "EXISTS %s", key), 0);
    raw_ok(c, "SELECT 5");
    ASSERT_EQ(raw_int(c, "EXISTS %s", key), 1);
    raw_int(c, "DEL %s", key);
    redisFree(c);
    ns_ratelimit_destroy(rl);
}

TEST(script_flush_is_survived)
{
    ns_ratelimit_t *rl = limiter();
    redisContext *c = raw_redis();
    const char *b = bucket("flush");
    ASSERT_EQ(take(rl, b, 1, 2), 0);
    ASSERT_EQ(take(rl, b, 1, 2), 0);
    raw_ok(c, "SCRIPT FLUSH");
    /* Still limited: the script was loaded again, not failed open. */
    ASSERT(take(rl, b, 1, 2) > 0);
    ASSERT_EQ(take(rl, bucket("flush2"), 1, 2), 0);
    redisFree(c);
    ns_ratelimit_destroy(rl);
}

TEST(killed_connection_is_remade)
{
    ns_ratelimit_t *rl = limiter();
    redisContext *c = raw_redis();
    const char *b = bucket("kill");
    ASSERT_EQ(take(rl, b, 1, 1), 0);
    /* Only this process' limiter connection: other tests may be running
     * against the same Redis. */
    char name[64];
    snprintf(name, sizeof(name), "nightshift-ratelimit-%ld", (long)getpid());
    redisReply *r = redisCommand(c, "CLIENT LIST");
    ASSERT(r != NULL && r->type == REDIS_REPLY_STRING);
    int killed = 0;
    for (char *line = r->str; line != NULL && *line != '\0';) {
        char *eol = strchr(line, '\n');
        if (eol != NULL)
            *eol = '\0';
        char want[80];
        snprintf(want, sizeof(want), " name=%s ", name);
        long long id = 0;
        if (strstr(line, want) != NULL && sscanf(line, "id=%lld ", &id) == 1) {
            char ids[32];
            snprintf(ids, sizeof(ids), "%lld", id);
            raw_int(c, "CLIENT KILL ID %s", ids);
            killed++;
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    freeReplyObject(r);
    ASSERT_EQ(killed, 1);
    /* Reconnected at once and still limited. */
    ASSERT(take(rl, b, 1, 1) > 0);
    redisFree(c);
    ns_ratelimit_destroy(rl);
}

int main(int argc, char **argv)
{
    if (redis_url() == NULL || redis_url()[0] == '\0') {
        printf("skipped: NS_REDIS_URL is not set (start tests/stack.sh up "
               "and eval \"$(tests/stack.sh env)\")\n");
        return 77;
    }
    if (strncmp(redis_url(), "redis://", 8) != 0) {
        printf("skipped: NS_REDIS_URL is not a redis:// URL\n");
        return 77;
    }
    return nstest_main(argc, argv);
}
