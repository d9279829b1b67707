/* jsonschema_format.h: private to common/: the string checks the JSON
 * Schema validator uses (jsonschema_format.c). */
#ifndef NS_JSONSCHEMA_FORMAT_H
#define NS_JSONSCHEMA_FORMAT_H

#include <stdbool.h>

/** @brief RFC 3339 full-date "YYYY-MM-DD" at the start of s, the day valid
 *  for its month (leap years included). */
bool ns_jsonschema_is_date(const char *s);

/** @brief RFC 3339 date-time with a mandatory offset ("Z" or +HH:MM); a
 *  leap second only at 23:59:60 UTC. */
bool ns_jsonschema_is_date_time(const char *s);

/** @brief Code points in s, or -1 when s is not valid UTF-8. */
long ns_jsonschema_utf8_length(const char *s);

#endif
