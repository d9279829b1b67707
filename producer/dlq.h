/* dlq.h: the operator's dead-letter verbs — list, show, replay. Each
 * returns a process exit code (0 ok, 1 failure, 2 usage) and prints to
 * out; main.c only parses. */
#ifndef NS_DLQ_H
#define NS_DLQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ns/config.h"
#include "ns/err.h"

/** Which dead letters a verb looks at; NULL fields do not filter. */
typedef struct ns_dlq_filter {
    const char *job;   /**< also matches job-less rows from ns.items.<job> */
    const char *item;  /**< item key, or the message key of job-less rows */
    const char *since; /**< "2026-11-23", "2026-11-23T10:00:00Z", "30m" ... */
    const char *id;    /**< one dead letter */
    int limit;         /**< list: at most this many rows; 0 = all */
} ns_dlq_filter_t;

/** @brief Dead letters, newest first, as a table or JSON. */
int ns_dlq_list(const ns_config_t *cfg, const ns_dlq_filter_t *filter,
                bool json, FILE *out);

/** @brief Everything about one dead letter: cause, origin, payload (JSON
 *  pretty-printed, else a hex dump), the current state of its item and the
 *  history of the same message. */
int ns_dlq_show(const ns_config_t *cfg, const char *id, bool json, FILE *out);

/** @brief Re-injects the original messages into their job's topic and
 *  waits for delivery. Failed items go back to pending and their finished
 *  runs are reopened first (one transaction); rows whose item is already
 *  done, or that a newer dead letter of the same message supersedes, are
 *  skipped. dry_run prints the plan and changes nothing.
 *  @remark At least one filter is required (2 otherwise). */
int ns_dlq_replay(const ns_config_t *cfg, const ns_dlq_filter_t *filter,
                  bool dry_run, FILE *out);

/** @brief Parses a --since value: an ISO date or time (UTC unless it has a
 *  zone: "2026-11-23", "2026-11-23T10:00:00Z", "2026-11-23 10:00+02:00")
 *  or an age before now_ms ("90s", "30m", "1h", "2d", "1w").
 *  @returns NS_OK with *epoch_ms set, or NS_ERR_INVALID with err. */
ns_err_t ns_dlq_parse_time(const char *text, int64_t now_ms, int64_t *epoch_ms,
                           ns_error_t *err);

#endif
