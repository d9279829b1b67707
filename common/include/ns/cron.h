/* cron.h: 5-field cron expressions evaluated in an IANA time zone.
 * Time zones come from the system's tzdata (/usr/share/zoneinfo). Across DST:
 * a wall time skipped by spring-forward fires once at the first valid instant
 * after the gap; a wall time repeated by fall-back fires once (first pass). */
#ifndef NS_CRON_H
#define NS_CRON_H

#include <stdint.h>

#include "ns/err.h"

typedef struct ns_cron ns_cron_t;

/** @brief Parses "m h dom mon dow" (lists, ranges, steps, names JAN..DEC,
 *  SUN..SAT, 7 = Sunday) or @hourly @daily @midnight @weekly @monthly
 *  @yearly @annually. Day-of-month and day-of-week combine as in Vixie
 *  cron (either matches when both are restricted).
 *  @returns NULL with err set (message names the bad field) on failure. */
ns_cron_t *ns_cron_parse(const char *expr, ns_error_t *err);
void ns_cron_destroy(ns_cron_t *cron);

/** @brief 1 when tz names a zone in the system tzdata ("UTC" included). */
int ns_tz_valid(const char *tz);

/** @brief The first firing strictly after after_s (epoch seconds), in zone
 *  tz. @returns epoch seconds, or -1 if none within 5 years (e.g. Feb 30). */
int64_t ns_cron_next(const ns_cron_t *cron, const char *tz, int64_t after_s);

#endif
