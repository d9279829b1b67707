/* teams.h: Microsoft Teams messages through an incoming webhook or a
 * Workflows ("When a Teams webhook request is received") URL: one Adaptive
 * Card per message, escaped so that caller text arrives literally. */
#ifndef NS_TEAMS_H
#define NS_TEAMS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "ns/err.h"

/** Teams refuses a message body over 28 KB. */
#define NS_TEAMS_MAX_PAYLOAD (28 * 1024)

/** @brief Escapes text for an Adaptive Card TextBlock (which renders a
 *  Markdown subset): Markdown punctuation gets a backslash, "<" and ">"
 *  become entities, control characters other than \n are dropped, invalid
 *  UTF-8 becomes U+FFFD. @returns malloc'd string, NULL when out of
 *  memory. */
char *ns_teams_escape(const char *text);

/** @brief The message for a card: {"title", "text", "facts": [[name,
 *  value], ...], "severity": "critical" | "warning" | "good" | "default"}
 *  (card, owned by the caller, may carry only some of them), as the
 *  {"type": "message", "attachments": [Adaptive Card 1.4]} both endpoints
 *  take; every string escaped. Text is cut (marked "…") so the whole
 *  body stays under NS_TEAMS_MAX_PAYLOAD.
 *  @returns malloc'd JSON, NULL when out of memory. */
char *ns_teams_message(const cJSON *card);

/** @brief POSTs body to the webhook url (timeout_ms). An incoming webhook
 *  answers 200 "1", a Workflows URL 202. @returns NS_OK;
 *  NS_ERR_TRANSIENT on 429 (err->retry_after_s from Retry-After), 408,
 *  5xx, timeouts, and a 200 whose text reports a throttled call;
 *  NS_ERR_PERMANENT on other 4xx (400 bad card, 404 / 410 webhook
 *  removed, 413 too large) or such a 200. The URL is a secret: it never
 *  appears in err. */
ns_err_t ns_teams_post(const char *url, const char *body, long timeout_ms,
                       ns_error_t *err);

#endif
