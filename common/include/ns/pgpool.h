/* pgpool.h: a bounded pool of PostgreSQL connections shared by threads.
 * Items hold a connection only while they talk to the database, so a
 * worker with hundreds of items waiting on HTTP needs a handful. */
#ifndef NS_PGPOOL_H
#define NS_PGPOOL_H

#include <libpq-fe.h>

#include "ns/err.h"

typedef struct ns_pgpool ns_pgpool_t;

/** @brief A pool of at most size connections to dsn, opened lazily. */
ns_pgpool_t *ns_pgpool_new(const char *dsn, int size, ns_error_t *err);

/** @brief Takes a connected connection, waiting up to timeout_ms for a
 *  free one. @returns NULL with err set (transient) if none could be had
 *  (pool exhausted or Postgres down). */
PGconn *ns_pgpool_get(ns_pgpool_t *pool, int timeout_ms, ns_error_t *err);

/** @brief Returns conn. A connection in a transaction is rolled back; a
 *  broken one is closed and replaced on a later get. */
void ns_pgpool_put(ns_pgpool_t *pool, PGconn *conn);

void ns_pgpool_destroy(ns_pgpool_t *pool);

#endif
