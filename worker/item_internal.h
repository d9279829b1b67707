/* item_internal.h (worker-private): the pieces of item processing shared
 * by the one-item path (item.c), batches (batch.c) and the failure paths
 * (deadletter.c). */
#ifndef NS_ITEM_INTERNAL_H
#define NS_ITEM_INTERNAL_H

#include "ctx.h"
#include "item.h"
#include "ns/envelope.h"

/** item_after_failure: wait here and try again (no retry tiers). */
#define ITEM_RETRY_HERE 2

/** Counts an item outcome (and its duration when seconds >= 0). */
void item_count(const char *job, const char *outcome, double seconds);

/** Hands a transiently failed item to the retry tier for delay_ms. */
ns_err_t item_send_to_retry(ns_item_res_t *res, const ns_msg_t *msg,
                            int64_t delay_ms, const char *why, ns_error_t *err);

/** Records an unprocessable message / failed item (ns.dlq, dead_letters,
 *  items.status). Returns 0 if it gave up because the worker is stopping. */
int item_dead_letter(ns_item_res_t *res, const ns_msg_t *msg,
                     const ns_envelope_t *env, int attempts,
                     const char *reason);

/** Marks the item done in the context's transaction and commits. */
ns_err_t item_commit_done(ns_item_ctx_t *ctx, ns_error_t *err);

/** After a failed attempt: dead-letter, retry tier, or ITEM_RETRY_HERE. */
int item_after_failure(ns_item_res_t *res, const ns_msg_t *msg,
                       ns_envelope_t *env, const ns_job_t *job,
                       const ns_log_ctx_t *lc, int attempts, ns_err_t rc,
                       const ns_error_t *err, int64_t t0);

void item_init_ctx(ns_item_ctx_t *ctx, ns_item_res_t *res, const ns_job_t *job,
                   const ns_envelope_t *env);

/** The one-item path from the attempt after `attempts` (already recorded
 *  in items.attempts when started). */
ns_item_outcome_t item_run(ns_item_res_t *res, const ns_msg_t *msg,
                           ns_envelope_t *env, const ns_job_t *job,
                           const ns_handler_def_t *h, int attempts,
                           bool started);

#endif
