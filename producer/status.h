/* status.h: the runs and job health behind `nightshift status --json`,
 * as a cJSON tree, for the status page's API as well. */
#ifndef NS_STATUS_H
#define NS_STATUS_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "ns/err.h"

/** @brief {"runs": [...], "jobs": [...]} (plus "items" for one run) for
 *  arg: NULL (the latest 20 runs), a job name (its latest 20) or a run id.
 *  A run has job, kind, status, items_total/done/failed/pending,
 *  duration_s, rate_per_s (items finished per second so far) and eta_s
 *  (seconds left at that pace, while it runs), its error and delivery.
 *  @returns the tree (caller cJSON_Delete), or NULL with err: NS_ERR_NOT_FOUND
 *  for an unknown run id, else the database's error. */
cJSON *ns_status_json(PGconn *pg, const char *arg, ns_error_t *err);

#endif
