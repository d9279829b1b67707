/* item.h: processing consumed item messages, start to end: decode, check,
 * run the handler with retries, commit status and writes in one
 * transaction, dead-letter what cannot be processed, trigger the
 * finalizer. What the consume loop (pool.c) calls. */
#ifndef NS_ITEM_H
#define NS_ITEM_H

#include <stddef.h>

#include "res.h"

/** @brief One message: an item of a run, or of a stream job. */
ns_item_outcome_t ns_item_process(ns_item_res_t *res, const ns_msg_t *msg);

/** @brief Several items of fast handlers at once (batched bookkeeping);
 *  outcomes[i] belongs to msgs[i]. Falls back to one by one. */
void ns_item_process_batch(ns_item_res_t *res, const ns_msg_t *msgs,
                           ns_item_outcome_t *outcomes, size_t n);

#endif
