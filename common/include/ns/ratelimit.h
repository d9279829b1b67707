/* ratelimit.h: outbound rate limits shared by every worker replica.
 * One token bucket per external API lives in Redis and is updated by one
 * Lua script, atomically, on Redis' clock; a limited call waits for it.
 *
 * A limiter outage never stops the work: when Redis is unreachable (or
 * answers something unexpected) every call is let through ("fail open")
 * and a warning is logged at most once per 10 s. The limiter delays calls;
 * it never fails one.
 *
 * Bucket state is the hash "ns:rl:<bucket>" {level, at}. It expires once
 * it would be full again, so an idle bucket costs nothing, and a missing
 * key simply means "full". Buckets are keyed by name only: every replica
 * must use the same rate and burst for one bucket (they come from one
 * config file, so they do). */
#ifndef NS_RATELIMIT_H
#define NS_RATELIMIT_H

#include <signal.h>
#include <stdint.h>

#include "ns/err.h"

typedef struct ns_ratelimit ns_ratelimit_t;

/** @brief Creates a limiter talking to the Redis at redis_url:
 *  "redis://[[user]:password@]host[:port][/db]" (port 6379, db 0 by
 *  default; user and password may be %-encoded; host a name or IPv4)
 *  or "unix://[[user]:password@]/path/to/socket[?db=N]".
 *  @returns NULL with err set (NS_ERR_INVALID) when the URL is malformed or
 *  the server answers that the credentials, the db or the script are
 *  refused — a wrong configuration should stop a deploy. An unreachable
 *  server is not an error: the handle is returned, calls fail open, and
 *  it connects as soon as the server is back.
 *  @remark Thread-safe: one connection per handle behind a mutex (a take is
 *  one round trip; nobody sleeps or connects while holding it). Connect
 *  and command timeouts are 500 ms. A broken connection is re-made at once;
 *  while Redis stays unreachable (or hung), one call per second tries
 *  again, paying for the attempt, and the others fail open at once. A handle
 *  must not be used on both sides of a fork(); create one per process.
 *  The password is registered with ns_log_add_secret(); the connection is
 *  named "nightshift-ratelimit-<pid>" in CLIENT LIST. */
ns_ratelimit_t *ns_ratelimit_new(const char *redis_url, ns_error_t *err);

/** @brief Closes the connection and frees rl. NULL is a no-op. */
void ns_ratelimit_destroy(ns_ratelimit_t *rl);

/** @brief Takes `tokens` from `bucket` (refilled at rate_per_s, holding at
 *  most burst) if they are there: *wait_ms = 0. Otherwise takes nothing
 *  and sets *wait_ms (>= 1) to the time until enough tokens exist.
 *  @returns NS_OK, also when Redis is unavailable (then *wait_ms = 0:
 *  fail open); NS_ERR_INVALID for a bad argument: bucket empty, longer
 *  than 200 bytes or holding control characters; rate_per_s outside
 *  (0, 1e9]; burst outside [tokens, 1e9]; tokens <= 0.
 *  @remark rl may be NULL (no limiter configured): everything is granted.
 *  A missing bucket starts full. */
ns_err_t ns_ratelimit_take(ns_ratelimit_t *rl, const char *bucket,
                           double rate_per_s, double burst, double tokens,
                           int64_t *wait_ms, ns_error_t *err);

/** @brief Waits until one token of `bucket` is granted: take, sleep for
 *  the time take asked for (in slices of at most 50 ms, watching
 *  *running), take again...
 *  @returns NS_OK once granted. NS_ERR_TRANSIENT with err->retry_after_s
 *  set, having taken nothing, when the total wait would exceed max_wait_ms
 *  (< 0: no limit; 0: never sleep), or when *running turns 0 — so a caller
 *  can reschedule the item instead of holding its thread. NS_ERR_INVALID
 *  as for ns_ratelimit_take(). running may be NULL. */
ns_err_t ns_ratelimit_wait(ns_ratelimit_t *rl, const char *bucket,
                           double rate_per_s, double burst, int64_t max_wait_ms,
                           volatile sig_atomic_t *running, ns_error_t *err);

/** @brief Parses a limit from the config: "<count>/<unit>[ burst <n>]",
 *  e.g. "30/s", "1/s", "600/min", "100/h", "2.5/s", "30/s burst 60".
 *  Units: s|sec|second, min|minute, h|hour, d|day. count is a positive
 *  decimal; rate_per_s = count / unit length.
 *  The burst (the most calls let through at once after an idle spell)
 *  defaults to count, at least 1: "600/min" is 10/s with bursts of up to
 *  600, "100/h" is one every 36 s with bursts of up to 100.
 *  @remark Any window of one unit may then see up to 2 × count calls
 *  (a full bucket plus one unit of refill). For an API that enforces a
 *  strict sliding window, give a small burst: "600/min burst 10".
 *  @returns NS_OK; NS_ERR_INVALID naming the spec and the problem. Counts
 *  and bursts above 1e9, and bursts below 1, are refused. */
ns_err_t ns_ratelimit_parse(const char *spec, double *rate_per_s, double *burst,
                            ns_error_t *err);

#endif
