/* bookkeeper.h: group commit of the per-item bookkeeping.
 *
 * Every item costs a few small statements: record the attempt (checking
 * that the item is still pending and its run alive), mark it done, check
 * whether its run is complete. With hundreds of items in flight, one
 * connection and round trip per statement per item makes Postgres the
 * bottleneck. The bookkeeper owns one connection and one thread: callers
 * queue requests and block; the thread takes everything queued, runs one
 * statement per kind for the whole batch, and wakes the callers. Under
 * load, batches grow by themselves (requests accumulate while a batch is
 * in the database); idle, a request costs one round trip as before.
 *
 * Results are the same as the one-item statements', so callers keep their
 * semantics; NS_BK_ERROR means "not decided here" (the statement failed
 * with a live connection), and the caller falls back to its own path. */
#ifndef NS_BOOKKEEPER_H
#define NS_BOOKKEEPER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ns/err.h"

typedef struct ns_bookkeeper ns_bookkeeper_t;

typedef enum ns_bk_result {
    NS_BK_OK,        /**< start: attempt recorded; done: recorded */
    NS_BK_TERMINAL,  /**< start: already done or failed (a redelivery) */
    NS_BK_UNKNOWN,   /**< start: no such item */
    NS_BK_CANCELLED, /**< start: its run was cancelled or failed */
    NS_BK_STOPPING,  /**< Postgres unreachable and the worker stopping */
    NS_BK_ERROR,     /**< statement failed: use the one-item path */
} ns_bk_result_t;

#define NS_BK_MAX_CONNECTIONS 8

/** @brief Starts the bookkeeper: `connections` threads (1..8), each with
 *  its own connection, taking turns at the queue (while one batch is in
 *  the database the next can start). running: while Postgres is down
 *  requests wait for it, until *running drops (then NS_BK_STOPPING).
 *  @returns NULL with err set. */
ns_bookkeeper_t *ns_bookkeeper_new(const char *dsn, int connections,
                                   volatile sig_atomic_t *running,
                                   ns_error_t *err);

/** @brief Flushes what is queued and stops the thread. NULL: no-op. */
void ns_bookkeeper_destroy(ns_bookkeeper_t *bk);

/** @brief Records an attempt of a pending item of a live run:
 *  attempts = attempts + 1, started_at set once. On NS_BK_OK *attempt is
 *  the number of this attempt (1 for the first); otherwise the attempts
 *  recorded so far (0 when unknown). */
ns_bk_result_t ns_bookkeeper_start(ns_bookkeeper_t *bk, int64_t run_id,
                                   const char *item_key, int *attempt);

/** @brief Marks a pending item done with its report (JSON text or NULL).
 *  An item another delivery finished first counts as recorded (NS_BK_OK).
 *  *maybe_complete: no pending item of the run was left after it, and no
 *  other request of this batch was told so for the same run (then the
 *  caller claims the run's finalization). */
ns_bk_result_t ns_bookkeeper_done(ns_bookkeeper_t *bk, int64_t run_id,
                                  const char *item_key, const char *report,
                                  bool *maybe_complete);

/** @brief Whether the run has no pending item left (after a caller
 *  committed an item in its own transaction); see ns_bookkeeper_done. */
ns_bk_result_t ns_bookkeeper_check(ns_bookkeeper_t *bk, int64_t run_id,
                                   bool *maybe_complete);

/** One item of a batch of requests (ns_bookkeeper_start_n / _done_n). */
typedef struct ns_bk_item {
    int64_t run_id;        /**< in */
    const char *item_key;  /**< in */
    const char *report;    /**< in, done: JSON text or NULL */
    ns_bk_result_t result; /**< out, as the one-item call returns */
    int attempt;           /**< out, start: as ns_bookkeeper_start's */
    bool maybe_complete;   /**< out, done: as ns_bookkeeper_done's */
} ns_bk_item_t;

/** @brief ns_bookkeeper_start for each of n items, queued at once (one
 *  wait for all of them instead of one per item). */
void ns_bookkeeper_start_n(ns_bookkeeper_t *bk, ns_bk_item_t *items, size_t n);

/** @brief ns_bookkeeper_done for each of n items, likewise. */
void ns_bookkeeper_done_n(ns_bookkeeper_t *bk, ns_bk_item_t *items, size_t n);

typedef struct ns_bk_stats {
    uint64_t statements; /**< run (including failed tries) */
    uint64_t batches;    /**< taken from the queue */
    uint64_t taken;      /**< requests taken into batches */
    uint64_t served;     /**< requests answered */
    uint64_t queued;     /**< requests waiting for the next batch */
} ns_bk_stats_t;

/** @brief Counters so far (tests, metrics). */
ns_bk_stats_t ns_bookkeeper_stats(ns_bookkeeper_t *bk);

#endif
