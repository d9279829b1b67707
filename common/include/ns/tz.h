/* tz.h: IANA time zones read from the system's TZif files
 * (RFC 8536), with the POSIX TZ footer for instants after the last listed
 * transition. Thread-safe; no TZ environment switching. */
#ifndef NS_TZ_PRIVATE_H
#define NS_TZ_PRIVATE_H

#include <stdint.h>

typedef struct ns_tz ns_tz_t;

/** @brief The zone named name ("UTC" is built in; other names are files
 *  under $TZDIR or /usr/share/zoneinfo). Loaded once and cached.
 *  @returns NULL when the name is unsafe, missing or not a valid TZif file.
 *  @remark The zone lives until the process exits; never free it. */
const ns_tz_t *ns_tz_get(const char *name);

/** @brief Offset of local time from UTC, in seconds, at instant utc_s. */
int32_t ns_tz_utc_offset(const ns_tz_t *tz, int64_t utc_s);

/** @brief Maps a local wall time (seconds since 1970-01-01 00:00 local) to
 *  the first instant whose local time is at or after it: a repeated wall
 *  time maps to its first occurrence, a skipped one to the end of the gap. */
int64_t ns_tz_local_to_utc(const ns_tz_t *tz, int64_t local_s);

/** @brief Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t ns_tz_days_from_civil(int64_t year, int month, int day);

/** @brief The date of a day number from ns_tz_days_from_civil. */
void ns_tz_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/** @brief Day of the week (0 = Sunday) of a day number. */
int ns_tz_weekday(int64_t days);

#endif
