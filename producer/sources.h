/* sources.h: item sources (sql, one). A source turns a run into item rows
 * inside Postgres, in the caller's transaction. */
#ifndef NS_SOURCES_H
#define NS_SOURCES_H

#include <libpq-fe.h>
#include <stdint.h>

#include "ns/config.h"
#include "ns/err.h"

/** @brief Inserts the run's items (key + JSON payload).
 *  @returns NS_OK with *count items recorded. */
ns_err_t ns_source_enumerate(PGconn *conn, const ns_job_t *job, int64_t run_id,
                             int64_t *count, ns_error_t *err);

/** @brief For an sql source, in conn's open transaction: declares a
 *  cursor over the run's rows as (item key, Kafka key, payload text), the
 *  key NULL where the row has none, the Kafka key the order key's value
 *  (source.order_key) or the item key, the payload as items.payload will
 *  print it. For recording the items in chunks as they are read. */
ns_err_t ns_source_sql_declare(PGconn *conn, const ns_job_t *job,
                               int64_t run_id, const char *cursor,
                               ns_error_t *err);

#endif
