/* logs.h (handlers-private): what logs.window (logs.c) hands to the
 * incident detection (logs_detect.c) once a window is counted. */
#ifndef NS_HANDLERS_LOGS_H
#define NS_HANDLERS_LOGS_H

#include <stddef.h>
#include <stdint.h>

#include "handler.h"
#include "ns/logline.h"
#include "ns/logparse.h"

/** One (service, template)'s lines in the window. */
typedef struct ns_logcount {
    char *service;
    uint64_t template_id;
    int64_t lines;
    ns_loglevel_t level; /**< the most severe among them */
} ns_logcount_t;

/** The window just counted. */
typedef struct ns_logwindow {
    const char *service; /**< the item's; NULL: every service */
    const char *start;   /**< RFC 3339, as in the item */
    int64_t start_ms, end_ms;
    const ns_logcount_t *counts;
    size_t n_counts;
    const ns_logparse_t *parser; /**< template texts */
} ns_logwindow_t;

/** @brief Judges every count against its history (text/anomaly.c), opens
 *  or extends incidents for spikes and bursts, resolves the open ones that
 *  are quiet now, and queues a Teams card (notify.teams.webhook) when a
 *  critical one opens or resolves, all in the item's transaction. Only
 *  the job's newest window judges: re-running an older one (a backfill)
 *  recounts it without reopening its incidents. Dry run: reported. */
ns_err_t ns_logs_detect(ns_item_ctx_t *ctx, const ns_logwindow_t *w,
                        ns_error_t *err);

#endif
