/* deadletter.h (private): the failure paths of an item: a retry tier for
 * a transient failure, the dead letters (ns.dlq and dead_letters) for a
 * permanent one or the last attempt. Below item.c, batch.c and stream.c;
 * above ctx.h only. */
#ifndef NS_DEADLETTER_H
#define NS_DEADLETTER_H

#include "ctx.h"

/** item_after_failure: wait here and try again (no retry tiers). */
#define ITEM_RETRY_HERE 2

/** @brief Hands a transiently failed item to the retry tier for delay_ms. */
ns_err_t item_send_to_retry(ns_item_res_t *res, const ns_msg_t *msg,
                            int64_t delay_ms, const char *why, ns_error_t *err);

/** @brief Records an unprocessable message / failed item (ns.dlq,
 *  dead_letters, items.status). @returns 0 if it gave up because the
 *  worker is stopping. */
int item_dead_letter(ns_item_res_t *res, const ns_msg_t *msg,
                     const ns_envelope_t *env, int attempts,
                     const char *reason);

/** @brief After a failed attempt: dead-letter (NS_ITEM_COMMITTED), a retry
 *  tier (NS_ITEM_COMMITTED), stopping (NS_ITEM_ABANDONED) or, without
 *  tiers, after waiting here, ITEM_RETRY_HERE. */
int item_after_failure(ns_item_res_t *res, const ns_msg_t *msg,
                       ns_envelope_t *env, const ns_job_t *job,
                       const ns_log_ctx_t *lc, int attempts, ns_err_t rc,
                       const ns_error_t *err, int64_t t0);

#endif
