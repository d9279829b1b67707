/* pacing.h: how fast each outbox channel may send, shared by every worker
 * replica through the Redis limiter: per channel (one bot, one SMTP
 * server), per target (one chat, one recipient list) and, for Telegram,
 * per group chat, with defaults from the services' documented limits that
 * rate_limits: in jobs.yaml overrides ("off" turns one off). */
#ifndef NS_PACING_H
#define NS_PACING_H

#include <stddef.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/ratelimit.h"

#define NS_PACE_MAX 4

/** One bucket a message must take a token from. */
typedef struct ns_pace {
    const char *key;  /**< the rate_limits key, e.g. "telegram.chat" */
    char bucket[300]; /**< the Redis bucket: key[:target] */
    double rate;      /**< tokens per second */
    double burst;
} ns_pace_t;

/** @brief The buckets a message on channel to target takes, strictest
 *  first. @returns how many (0: the channel is not paced). */
size_t ns_pacing_buckets(const ns_config_t *cfg, const char *channel,
                         const char *target, ns_pace_t out[NS_PACE_MAX]);

/** @brief Takes one token of every bucket of the message, or none of the
 *  later ones when an earlier one has none. Never waits.
 *  @returns 0 when the message may go now, else the milliseconds until
 *  it may (the caller reschedules it). A limiter outage returns 0. */
int64_t ns_pacing_take(ns_ratelimit_t *rl, const ns_config_t *cfg,
                       const char *channel, const char *target);

#endif
