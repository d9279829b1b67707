/* finalize.h (private): fan-in. A run whose items are all terminal is
 * claimed by one worker and its finalizer runs once, in one transaction;
 * a sweeper finishes what a crashed claimer left. Above ctx.h only. */
#ifndef NS_FINALIZE_H
#define NS_FINALIZE_H

#include <stdint.h>

#include "res.h"

/** @brief One sweep: claims complete runs nobody finalized (crashes,
 *  zero-item runs) and finalizes due ones. */
void ns_finalize_sweep(ns_item_res_t *res);
/** @brief After an item became terminal: claim the run if it is complete
 *  and finalize it now. */
void ns_finalize_if_complete(ns_item_res_t *res, int64_t run_id);

#endif
