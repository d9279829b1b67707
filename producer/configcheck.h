/* configcheck.h: `nightshift config check [FILE] [--json]`: validates a
 * jobs file and lists its jobs with their next fire time, so an operator
 * sees what the scheduler would do before deploying. main.c only parses. */
#ifndef NS_CONFIGCHECK_H
#define NS_CONFIGCHECK_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ns/config.h"

/** @brief Loads path (handlers checked with known) and prints, as of
 *  now_s (Unix seconds), "PATH: ok (N jobs)" and one line per job (name,
 *  schedule, zone, next fire time in UTC, handler), or with json one
 *  object: {"path", "ok": true, "jobs": [{"name", "schedule",
 *  "timezone", "suspend", "source", "handler", "finalizer",
 *  "partitions", "next_fire"}]}; a job without a schedule, or suspended,
 *  has next_fire null. An invalid file prints "PATH:LINE: cause" on
 *  errout, or with json {"path", "ok": false, "error"} on out.
 *  @returns 0 valid, 2 invalid. */
int ns_ops_config_check(const char *path, ns_handler_known_fn known, bool json,
                        int64_t now_s, FILE *out, FILE *errout);

/** @brief One job as config check's JSON shows it: name, schedule,
 *  timezone, suspend, source, handler, finalizer, partitions and next_fire
 *  (after now_s; null without one). Caller cJSON_Delete. */
cJSON *ns_ops_job_json(const ns_job_t *job, int64_t now_s);

/** @brief The source kind's name as written in a jobs file ("sql"). */
const char *ns_source_kind_name(ns_source_kind_t kind);

#endif
