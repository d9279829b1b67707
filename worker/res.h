/* res.h: what a pool thread brings to every item it processes: config,
 * its Postgres connection, the producer for retry tiers and ns.dlq, the
 * shared rate limits and the bookkeeper; plus one consumed message.
 * The lowest layer of the worker: it includes nothing of worker/. */
#ifndef NS_RES_H
#define NS_RES_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/kafka.h"
#include "ns/pgpool.h"
#include "ns/ratelimit.h"

/** Per-thread resources. */
typedef struct ns_item_res {
    const ns_config_t *cfg;
    ns_pgpool_t *pool; /**< NULL: pg is this thread's own connection */
    PGconn *pg;        /**< held connection, or NULL */
    unsigned seed;     /**< backoff jitter */
    volatile sig_atomic_t *running; /**< 0: stop waiting, hand items back */
    rd_kafka_t *producer;           /**< retry tiers and ns.dlq; may be NULL */
    const ns_retry_tier_t *tiers;   /**< n_tiers 0: retries wait in-thread */
    int n_tiers;
    ns_ratelimit_t *rl;       /**< shared outbound limits; NULL: none */
    struct ns_bookkeeper *bk; /**< batched bookkeeping; NULL: per item */
    /** Set by item_commit_done through bk: 1 the run may be complete, 0
     *  it is not, -1 not known (the caller asks). */
    int done_hint;
} ns_item_res_t;

/** One consumed message. */
typedef struct ns_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key;
    size_t key_len;
    const char *value;
    size_t len;
    bool compressed;
    const char *origin_topic;  /**< set when it came back from a retry */
    const char *first_failure; /**< likewise (RFC 3339) */
} ns_msg_t;

typedef enum ns_item_outcome {
    NS_ITEM_COMMITTED, /**< terminal (done, failed, dead-lettered, dup) */
    NS_ITEM_ABANDONED, /**< shutting down: not committed, redelivered */
} ns_item_outcome_t;

/** @brief Takes a token of the configured limit `name` (rate_limits:),
 *  bucket name[:suffix]. Waits up to max_wait_ms; beyond that returns
 *  NS_ERR_DEFERRED with err->retry_after_s. No such limit: NS_OK. */
ns_err_t ns_item_limit(ns_item_res_t *res, const char *name, const char *suffix,
                       int64_t max_wait_ms, ns_error_t *err);

/** @brief Sleeps up to ms, returning early (0) when *running drops. */
int ns_item_sleep(ns_item_res_t *res, int64_t ms);

/** @brief Makes sure res->pg is connected (taken from the pool if there is
 *  one), waiting while Postgres is down. @returns 0 when shutting down
 *  first. */
int ns_item_pg_wait(ns_item_res_t *res);

/** @brief One try at a connection (up to 5 s for a pooled one). */
PGconn *ns_item_pg_acquire(ns_item_res_t *res, ns_error_t *err);

/** @brief Gives a pooled connection back (no-op without a pool). */
void ns_item_pg_release(ns_item_res_t *res);

/** @brief Counts an item outcome (and its duration when seconds >= 0). */
void item_count(const char *job, const char *outcome, double seconds);

#endif
