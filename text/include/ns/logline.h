/* logline.h: one log line as it arrives on logs.raw, decoded into time,
 * service, host, level and message: the JSON that Fluent Bit's and
 * Vector's Kafka outputs write, and RFC 3164 / RFC 5424 syslog lines. */
#ifndef NS_LOGLINE_H
#define NS_LOGLINE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ns/err.h"

/** Severity, ordered (syslog's 8 levels plus trace/unknown). */
typedef enum ns_loglevel {
    NS_LOGLEVEL_UNKNOWN = 0,
    NS_LOGLEVEL_TRACE,
    NS_LOGLEVEL_DEBUG,
    NS_LOGLEVEL_INFO,
    NS_LOGLEVEL_NOTICE,
    NS_LOGLEVEL_WARNING,
    NS_LOGLEVEL_ERROR,
    NS_LOGLEVEL_CRITICAL,
    NS_LOGLEVEL_ALERT,
    NS_LOGLEVEL_EMERGENCY,
} ns_loglevel_t;

typedef enum ns_logformat {
    NS_LOGFORMAT_JSON,       /**< Fluent Bit, Vector, or any JSON object */
    NS_LOGFORMAT_SYSLOG3164, /**< "<PRI>Mmm dd hh:mm:ss host tag[pid]: msg" */
    NS_LOGFORMAT_SYSLOG5424, /**< "<PRI>1 TIMESTAMP host app procid msgid" */
} ns_logformat_t;

#define NS_LOGLINE_FIELD_MAX 128

typedef struct ns_logline {
    int64_t ts_ms; /**< the line's own time, epoch milliseconds UTC */
    char service[NS_LOGLINE_FIELD_MAX]; /**< "" when the line names none */
    char host[NS_LOGLINE_FIELD_MAX];    /**< "" when unknown */
    ns_loglevel_t level;
    ns_logformat_t format;
    char *message; /**< malloc'd, valid UTF-8, NUL-terminated */
    size_t message_len;
} ns_logline_t;

/** @brief Decodes one line (a Kafka message value). JSON objects: the time
 *  from "@timestamp", "timestamp", "time", "date" or "ts" (RFC 3339 text,
 *  or epoch seconds / milliseconds as a number); the message from
 *  "message", "log", "msg" or "MESSAGE"; the level from "level",
 *  "severity", "log.level", "levelname" or "lvl" (names or syslog
 *  numbers), else sniffed from the message's first word; the service from
 *  "service", "service.name", "app", "application", "appname",
 *  "SYSLOG_IDENTIFIER" or Kubernetes' "kubernetes.labels.app" /
 *  "kubernetes.container_name"; the host from "host", "hostname",
 *  "host.name" or "kubernetes.host". Syslog: severity from PRI; RFC 3164
 *  has no year or zone: the line is taken as UTC in the year that puts it
 *  at most a day after now_ms.
 *  @returns NS_OK with *out filled (free with ns_logline_free);
 *  NS_ERR_PERMANENT with the reason ("bad input: ...": not JSON and not
 *  syslog, invalid UTF-8, longer than max_bytes, no timestamp, no
 *  message); NS_ERR_NOMEM. */
ns_err_t ns_logline_parse(const char *data, size_t len, size_t max_bytes,
                          int64_t now_ms, ns_logline_t *out, ns_error_t *err);

/** @brief The same for a JSON object already parsed (an Elasticsearch
 *  document's _source): the JSON rules above, and a message that is not
 *  valid UTF-8 is refused. */
ns_err_t ns_logline_from_object(const cJSON *obj, ns_logline_t *out,
                                ns_error_t *err);

/** @brief Frees out->message; out may be NULL. */
void ns_logline_free(ns_logline_t *out);

/** @brief "error", "warning", ... ("unknown" for NS_LOGLEVEL_UNKNOWN). */
const char *ns_loglevel_name(ns_loglevel_t level);

/** @brief The level a name stands for ("ERR", "Warn", "fatal", "5", ...),
 *  case-insensitive; NS_LOGLEVEL_UNKNOWN when none. */
ns_loglevel_t ns_loglevel_parse(const char *name, size_t len);

/** @brief Parses RFC 3339 / ISO 8601 date-times ("2026-12-03T10:50:33Z",
 *  "2026-12-03 10:50:33.123+03:00", a date alone is midnight UTC).
 *  @returns 0 with *ms (epoch milliseconds UTC), -1 when not one. */
int ns_logline_parse_time(const char *s, size_t len, int64_t *ms);

#endif
