/* item_internal.h (worker-private): the pieces of the one-item path
 * (item.c) that batches (batch.c) fall back to. */
#ifndef NS_ITEM_INTERNAL_H
#define NS_ITEM_INTERNAL_H

#include "ctx.h"

/** @brief Marks the item done in the context's transaction and commits. */
ns_err_t item_commit_done(ns_item_ctx_t *ctx, ns_error_t *err);

/** @brief The one-item path from the attempt after `attempts` (already
 *  recorded in items.attempts when started). */
ns_item_outcome_t item_run(ns_item_res_t *res, const ns_msg_t *msg,
                           ns_envelope_t *env, const ns_job_t *job,
                           const ns_handler_def_t *h, int attempts,
                           bool started);

/** @brief What follows a failed attempt (the attempts-th, recorded) that
 *  did not run in item_run: dead letter, retry tier or, without tiers, the
 *  next attempts here on the one-item path. */
ns_item_outcome_t item_after_attempt(ns_item_res_t *res, const ns_msg_t *msg,
                                     ns_envelope_t *env, const ns_job_t *job,
                                     const ns_handler_def_t *h, int attempts,
                                     ns_err_t rc, const ns_error_t *err,
                                     int64_t t0);

/** @brief After an item of run_id ended outside ns_item_process: the
 *  run's finalization if it may be complete (ask: whether it may be is
 *  asked first; false: the bookkeeper said so already). */
void item_finalize_check(ns_item_res_t *res, int64_t run_id, bool ask);

#endif
