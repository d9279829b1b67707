/* guard.h: who may use the status page's one write action (DLQ replay):
 * the bearer token, and the checks that keep another site's page from
 * sending it (CSRF). Pure functions, unit-tested on their own. */
#ifndef NS_UI_GUARD_H
#define NS_UI_GUARD_H

#include <stdbool.h>
#include <stdint.h>

/** @brief Whether authorization is "Bearer <expected>" (scheme case-
 *  insensitive). The token is compared in time independent of where it
 *  differs. An empty expected token never matches. */
bool ns_ui_bearer_ok(const char *expected, const char *authorization);

/** @brief Why a write request must be refused as possibly cross-site, or
 *  NULL when it may go on. A browser sends Origin and Sec-Fetch-Site with
 *  every POST: another site's page shows its own origin (refused), ours
 *  shows http(s)://<Host>. Clients that send neither (curl) pass. The body
 *  must be declared application/json, which no HTML form can send without
 *  a CORS preflight (that this server never answers). */
const char *ns_ui_cross_site(const char *origin, const char *host,
                             const char *sec_fetch_site,
                             const char *content_type);

/** @brief Parses "<prefix><digits>[<rest>]": the id (1 to 18 digits) into
 *  *id and what follows it into *rest ("" or e.g. "/replay").
 *  @returns false when path does not have that shape. */
bool ns_ui_path_id(const char *path, const char *prefix, int64_t *id,
                   const char **rest);

#endif
