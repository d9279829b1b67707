#include "ns/ratelimit.h"

#include <ctype.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/log.h"
#include "ns/redis.h"

#define RL_TIMEOUT_MS 500
#define RL_RECONNECT_MS 1000
#define RL_WARN_EVERY_MS 10000
#define RL_SLICE_MS 50
#define RL_BUCKET_MAX 200
#define RL_LIMIT_MAX 1e9

/* KEYS[1] = bucket key; ARGV = rate (tokens/s), burst, tokens wanted.
 * Returns 0 when the tokens were taken, else the milliseconds until they
 * exist (>= 1). Time is Redis' own, in microseconds, so every replica
 * shares one clock. Numbers are written with string.format because Lua
 * would pass them to Redis with only 14 significant digits. A denial
 * writes nothing: the stored state stays exact. The key lives until the
 * bucket would be full again; a missing key means "full". Both durations
 * are capped at 30 days, which only matters for absurd configurations. */
static const char rl_script[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local want = tonumber(ARGV[3])\n"
    "local cap_ms = 2592000000\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local st = redis.call('HMGET', KEYS[1], 'level', 'at')\n"
    "local level = tonumber(st[1])\n"
    "local at = tonumber(st[2])\n"
    "if level == nil or at == nil then\n"
    "  level = burst\n"
    "elseif now > at then\n"
    "  level = level + (now - at) * rate / 1000000\n"
    "end\n"
    "if level > burst then level = burst end\n"
    "if level < want then\n"
    "  local wait = math.ceil((want - level) * 1000 / rate)\n"
    "  if wait < 1 then wait = 1 end\n"
    "  if wait > cap_ms then wait = cap_ms end\n"
    "  return wait\n"
    "end\n"
    "level = level - want\n"
    "local ttl = math.ceil((burst - level) * 1000 / rate)\n"
    "if ttl < 1 then ttl = 1 end\n"
    "if ttl > cap_ms then ttl = cap_ms end\n"
    "redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level),\n"
    "           'at', string.format('%.0f', now))\n"
    "redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl))\n"
    "return 0\n";

struct ns_ratelimit {
    ns_redis_url_t target;
    pthread_mutex_t lock; /* guards everything below */
    redisContext *ctx;    /* NULL while disconnected */
    char sha[41];
    int connecting; /* a thread is connecting without the lock */
    int64_t retry_at_ms;
    char cause[512]; /* why the last connect failed */
    int failing;     /* calls are being let through */
    int warned;
    int64_t last_warn_ms;
    long let_through; /* since the last warning */
};

enum rl_outcome { RL_DONE, RL_BROKEN, RL_FAILED };

/* snprintf for messages, which are cut rather than lost when too long
 * (vsnprintf: the compiler's truncation warnings do not apply). */
__attribute__((format(printf, 3, 4))) static void msgf(char *dst, size_t len,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, len, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------- connecting */

static ns_err_t load_script(redisContext *c, const ns_redis_url_t *t,
                            char sha[41], ns_error_t *err)
{
    const char *argv[] = {"SCRIPT", "LOAD", rl_script};
    redisReply *r = NULL;
    ns_err_t rc = ns_redis_command(c, t, 3, argv, &r, err);
    if (rc != NS_OK)
        return rc;
    int ok = r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok)
        memcpy(sha, r->str, 41);
    freeReplyObject(r);
    if (!ok)
        return ns_error_set(err, NS_ERR_INVALID,
                            "%s: SCRIPT LOAD: unexpected reply", t->where);
    return NS_OK;
}

/* Connects, authenticates, selects the db and loads the script.
 * NS_ERR_TRANSIENT: unreachable or busy; NS_ERR_INVALID: refused. */
static ns_err_t rl_connect(const ns_redis_url_t *t, redisContext **out,
                           char sha[41], ns_error_t *err)
{
    redisContext *c = ns_redis_connect(t, "ratelimit", RL_TIMEOUT_MS, err);
    if (c == NULL)
        return err->code;
    ns_err_t rc = load_script(c, t, sha, err);
    if (rc != NS_OK) {
        redisFree(c);
        return rc;
    }
    *out = c;
    return NS_OK;
}

ns_ratelimit_t *ns_ratelimit_new(const char *redis_url, ns_error_t *err)
{
    ns_redis_url_t target;
    ns_error_t e;
    ns_error_clear(&e);
    if (ns_redis_url_parse(redis_url, &target, &e) != NS_OK) {
        ns_error_set(err, e.code, "rate limiter: %s", e.msg);
        return NULL;
    }
    ns_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "rate limiter: out of memory");
        return NULL;
    }
    rl->target = target;
    pthread_mutex_init(&rl->lock, NULL);
    ns_err_t rc = rl_connect(&rl->target, &rl->ctx, rl->sha, &e);
    if (rc == NS_ERR_INVALID || rc == NS_ERR_NOMEM) {
        ns_error_set(err, rc, "rate limiter: %s", e.msg);
        ns_ratelimit_destroy(rl);
        return NULL;
    }
    if (rc != NS_OK) {
        msgf(rl->cause, sizeof(rl->cause), "%s", e.msg);
        rl->retry_at_ms = ns_clock_mono_ms() + RL_RECONNECT_MS;
    }
    return rl;
}

void ns_ratelimit_destroy(ns_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    if (rl->ctx != NULL)
        redisFree(rl->ctx);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

/* --------------------------------------------------------------- taking */

/* Lock held on entry and on return; released while connecting so other
 * threads fail open at once instead of queueing behind a slow connect.
 * immediate: ignore the once-per-second pacing of reconnects. Returns 1
 * when rl->ctx is usable; otherwise why says what is wrong. */
static int ensure_connected(ns_ratelimit_t *rl, int immediate, char *why,
                            size_t whylen)
{
    if (rl->ctx != NULL)
        return 1;
    if (rl->connecting ||
        (!immediate && ns_clock_mono_ms() < rl->retry_at_ms)) {
        msgf(why, whylen, "%s",
             rl->cause[0] != '\0' ? rl->cause : "reconnecting");
        return 0;
    }
    rl->connecting = 1;
    pthread_mutex_unlock(&rl->lock);
    redisContext *c = NULL;
    char sha[41];
    ns_error_t e;
    ns_error_clear(&e);
    ns_err_t rc = rl_connect(&rl->target, &c, sha, &e);
    pthread_mutex_lock(&rl->lock);
    rl->connecting = 0;
    if (rc != NS_OK) {
        rl->retry_at_ms = ns_clock_mono_ms() + RL_RECONNECT_MS;
        msgf(rl->cause, sizeof(rl->cause), "%s", e.msg);
        msgf(why, whylen, "%s", e.msg);
        return 0;
    }
    rl->ctx = c;
    memcpy(rl->sha, sha, sizeof(rl->sha));
    rl->cause[0] = '\0';
    return 1;
}

static enum rl_outcome drop_connection(ns_ratelimit_t *rl, char *why,
                                       size_t whylen)
{
    msgf(why, whylen, "%s: %s", rl->target.where, rl->ctx->errstr);
    msgf(rl->cause, sizeof(rl->cause), "%s", why);
    redisFree(rl->ctx);
    rl->ctx = NULL;
    return RL_BROKEN;
}

/* EVALSHA, lock held. When the server lost the script (restart, SCRIPT
 * FLUSH, failover), loads it again and retries once. RL_DONE with
 * *wait_ms set, RL_BROKEN (connection dropped) or RL_FAILED (an answer we
 * cannot use). */
static enum rl_outcome run_script(ns_ratelimit_t *rl, const char **argv,
                                  int64_t *wait_ms, char *why, size_t whylen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        argv[1] = rl->sha;
        redisReply *r = redisCommandArgv(rl->ctx, 7, argv, NULL);
        if (r == NULL)
            return drop_connection(rl, why, whylen);
        int ok = r->type == REDIS_REPLY_INTEGER && r->integer >= 0;
        int is_error = r->type == REDIS_REPLY_ERROR;
        int noscript = is_error && strncmp(r->str, "NOSCRIPT", 8) == 0;
        if (ok)
            *wait_ms = r->integer;
        else
            msgf(why, whylen, "%s: EVALSHA: %s", rl->target.where,
                 is_error ? r->str : "unexpected reply");
        freeReplyObject(r);
        if (ok || !noscript)
            return ok ? RL_DONE : RL_FAILED;
        ns_error_t e;
        ns_error_clear(&e);
        if (load_script(rl->ctx, &rl->target, rl->sha, &e) != NS_OK) {
            msgf(why, whylen, "%s", e.msg);
            return rl->ctx->err != 0 ? drop_connection(rl, why, whylen)
                                     : RL_FAILED;
        }
    }
    return RL_FAILED; /* NOSCRIPT right after SCRIPT LOAD */
}

/* Lock held. Lets the call through and says so, at most every 10 s. */
static void fail_open(ns_ratelimit_t *rl, const char *bucket, const char *why)
{
    rl->failing = 1;
    rl->let_through++;
    int64_t now = ns_clock_mono_ms();
    if (rl->warned && now - rl->last_warn_ms < RL_WARN_EVERY_MS)
        return;
    NS_WARN(NULL,
            "rate limiter unavailable, calls are let through unlimited "
            "(bucket \"%s\"; %ld since the last warning): %s",
            bucket, rl->let_through, why);
    rl->warned = 1;
    rl->last_warn_ms = now;
    rl->let_through = 0;
}

static ns_err_t check_args(const char *bucket, double rate, double burst,
                           double tokens, ns_error_t *err)
{
    size_t n = bucket != NULL ? strlen(bucket) : 0;
    int printable = n > 0 && n <= RL_BUCKET_MAX;
    for (size_t i = 0; printable && i < n; i++)
        printable = !iscntrl((unsigned char)bucket[i]);
    if (!printable)
        return ns_error_set(err, NS_ERR_INVALID,
                            "rate limiter: bad bucket name (1..%d printable "
                            "bytes)",
                            RL_BUCKET_MAX);
    if (!(rate > 0 && rate <= RL_LIMIT_MAX) || !(tokens > 0) ||
        !(burst >= tokens && burst <= RL_LIMIT_MAX))
        return ns_error_set(err, NS_ERR_INVALID,
                            "rate limit \"%s\": need 0 < rate <= 1e9, "
                            "0 < tokens <= burst <= 1e9 (got rate %g, burst "
                            "%g, tokens %g)",
                            bucket, rate, burst, tokens);
    return NS_OK;
}

ns_err_t ns_ratelimit_take(ns_ratelimit_t *rl, const char *bucket,
                           double rate_per_s, double burst, double tokens,
                           int64_t *wait_ms, ns_error_t *err)
{
    *wait_ms = 0;
    ns_err_t rc = check_args(bucket, rate_per_s, burst, tokens, err);
    if (rc != NS_OK || rl == NULL)
        return rc;
    char key[RL_BUCKET_MAX + 8], rate_s[32], burst_s[32], tokens_s[32];
    snprintf(key, sizeof(key), "ns:rl:%s", bucket);
    snprintf(rate_s, sizeof(rate_s), "%.17g", rate_per_s);
    snprintf(burst_s, sizeof(burst_s), "%.17g", burst);
    snprintf(tokens_s, sizeof(tokens_s), "%.17g", tokens);
    const char *argv[] = {"EVALSHA", NULL, "1", key, rate_s, burst_s, tokens_s};
    char why[512] = "";
    enum rl_outcome out = RL_BROKEN;

    pthread_mutex_lock(&rl->lock);
    /* A connection that broke is re-made at once, once: Redis may simply
     * have closed an idle link or restarted. */
    for (int attempt = 0; attempt < 2 && out == RL_BROKEN; attempt++) {
        if (!ensure_connected(rl, attempt > 0, why, sizeof(why))) {
            out = RL_FAILED;
            break;
        }
        out = run_script(rl, argv, wait_ms, why, sizeof(why));
    }
    if (out == RL_DONE && rl->failing) {
        NS_INFO(NULL,
                "rate limiter: %s is limiting again (%ld calls let "
                "through unlimited since the last warning)",
                rl->target.where, rl->let_through);
        rl->failing = 0;
        rl->let_through = 0;
    } else if (out != RL_DONE) {
        *wait_ms = 0;
        fail_open(rl, bucket, why);
    }
    pthread_mutex_unlock(&rl->lock);
    return NS_OK;
}

/* ---------------------------------------------------------------- waiting */

/* Sleeps ms in slices; 0 as soon as *running turns 0. */
static int sleep_watching(int64_t ms, volatile sig_atomic_t *running)
{
    int64_t until = ns_clock_mono_ms() + ms;
    for (;;) {
        if (running != NULL && !*running)
            return 0;
        int64_t left = until - ns_clock_mono_ms();
        if (left <= 0)
            return 1;
        if (left > RL_SLICE_MS)
            left = RL_SLICE_MS;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

ns_err_t ns_ratelimit_wait(ns_ratelimit_t *rl, const char *bucket,
                           double rate_per_s, double burst, int64_t max_wait_ms,
                           volatile sig_atomic_t *running, ns_error_t *err)
{
    int64_t start = ns_clock_mono_ms();
    for (;;) {
        int64_t wait_ms = 0;
        ns_err_t rc =
            ns_ratelimit_take(rl, bucket, rate_per_s, burst, 1, &wait_ms, err);
        if (rc != NS_OK || wait_ms == 0)
            return rc;
        int64_t waited = ns_clock_mono_ms() - start;
        int too_long = max_wait_ms >= 0 && waited + wait_ms > max_wait_ms;
        if (too_long || !sleep_watching(wait_ms, running)) {
            ns_error_set(err, NS_ERR_TRANSIENT,
                         "rate limit \"%s\": %s (next token in %lld ms)",
                         bucket,
                         too_long ? "would wait longer than allowed"
                                  : "stopped while waiting",
                         (long long)wait_ms);
            if (err != NULL)
                err->retry_after_s = (double)wait_ms / 1000.0;
            return NS_ERR_TRANSIENT;
        }
    }
}

/* ---------------------------------------------------------- config specs */

static const struct {
    const char *name;
    double seconds;
} rl_units[] = {
    {"s", 1},    {"sec", 1},     {"second", 1}, {"min", 60},    {"minute", 60},
    {"h", 3600}, {"hour", 3600}, {"d", 86400},  {"day", 86400},
};

static ns_err_t bad_spec(ns_error_t *err, const char *spec, const char *what)
{
    return ns_error_set(err, NS_ERR_INVALID, "rate limit \"%s\": %s",
                        spec != NULL ? spec : "", what);
}

static const char *skip_spaces(const char *s)
{
    return s + strspn(s, " \t");
}

/* A plain decimal ("30", "2.5"), read without strtod so that the locale
 * cannot change what "2.5" means, and "inf" or "0x1p3" are not numbers.
 * Returns the end, or NULL when there is none or it is out of (0, 1e9]. */
static const char *parse_decimal(const char *s, double *out)
{
    double v = 0, scale = 1;
    int digits = 0, dot = 0;
    for (; isdigit((unsigned char)*s) || (*s == '.' && !dot); s++) {
        if (*s == '.')
            dot = 1;
        else if (dot)
            v += (scale /= 10) * (*s - '0'), digits++;
        else
            v = v * 10 + (*s - '0'), digits++;
    }
    *out = v;
    return digits > 0 && v > 0 && v <= RL_LIMIT_MAX ? s : NULL;
}

/* Seconds in the unit named by the letters at *s (0: no such unit);
 * advances *s past them. */
static double unit_seconds(const char **s)
{
    const char *word = *s;
    size_t n = 0;
    while (isalpha((unsigned char)word[n]))
        n++;
    *s += n;
    for (size_t i = 0; i < sizeof(rl_units) / sizeof(rl_units[0]); i++)
        if (strlen(rl_units[i].name) == n &&
            strncasecmp(word, rl_units[i].name, n) == 0)
            return rl_units[i].seconds;
    return 0;
}

ns_err_t ns_ratelimit_parse(const char *spec, double *rate_per_s, double *burst,
                            ns_error_t *err)
{
    double count = 0, b = 0;
    const char *s =
        spec != NULL ? parse_decimal(skip_spaces(spec), &count) : NULL;
    if (s == NULL)
        return bad_spec(err, spec,
                        "expected <count>/<unit> with 0 < count <= 1e9, "
                        "e.g. \"30/s\" or \"600/min\"");
    s = skip_spaces(s);
    if (*s != '/')
        return bad_spec(err, spec, "expected \"/\" and a unit");
    s = skip_spaces(s + 1);
    double seconds = unit_seconds(&s);
    if (seconds == 0)
        return bad_spec(err, spec, "unknown unit (use s, min, h or d)");
    const char *rest = skip_spaces(s);
    if (*rest != '\0') {
        int keyword = rest > s && strncasecmp(rest, "burst", 5) == 0 &&
                      (rest[5] == ' ' || rest[5] == '\t');
        s = keyword ? parse_decimal(skip_spaces(rest + 5), &b) : NULL;
        if (s == NULL || *skip_spaces(s) != '\0' || b < 1)
            return bad_spec(err, spec,
                            "expected \"burst <n>\" after the unit, "
                            "1 <= n <= 1e9");
    }
    *rate_per_s = count / seconds;
    *burst = b > 0 ? b : fmax(count, 1);
    return NS_OK;
}
