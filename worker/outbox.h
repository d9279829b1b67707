/* outbox.h: delivering queued external messages.
 * Rows are written in the item's transaction; the dispatcher sends them in
 * order per target, retrying with backoff (honouring retry_after), so a
 * failing channel never blocks the data or another channel. */
#ifndef NS_OUTBOX_H
#define NS_OUTBOX_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/err.h"
#include "ns/ratelimit.h"

#define NS_OUTBOX_MAX_ATTEMPTS 15

/** @brief Sends at most one due message (per target in order; a run's
 *  summary after the rest of its run). Paced by pacing.h: a message whose
 *  turn has not come is rescheduled to when it has, not failed, and no
 *  thread waits for it. A run's reports to one chat are packed into
 *  digests (notify.telegram.mode). @returns 1 if one was handled (sent,
 *  rescheduled or failed), 0 if none was due, -1 on a database error. */
int ns_outbox_dispatch_one(PGconn *pg, const ns_config_t *cfg,
                           ns_ratelimit_t *rl);

/** @brief Milliseconds until the next pending message is due (0: now),
 *  -1 when none is pending or on error. */
int64_t ns_outbox_next_due_ms(PGconn *pg);

typedef struct ns_outbox ns_outbox_t;

/** @brief Starts the dispatcher thread (own connection). */
ns_outbox_t *ns_outbox_start(const ns_config_t *cfg, ns_ratelimit_t *rl,
                             volatile sig_atomic_t *running, ns_error_t *err);
/** @brief Waits for the thread to end (after *running dropped to 0). */
void ns_outbox_join(ns_outbox_t *o);

#endif
