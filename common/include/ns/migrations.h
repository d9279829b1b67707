/* migrations.h: the SQL migrations compiled into the binary
 * (schemas/sql/NNN_name.sql, in order) and the runner that applies them. */
#ifndef NS_MIGRATIONS_H
#define NS_MIGRATIONS_H

#include <libpq-fe.h>

#include "ns/embedded.h"
#include "ns/err.h"

/** One migration: name is the file name (e.g. "001_core.sql"), data its
 *  SQL (cmake/embed_files.cmake). */
typedef ns_embedded_file_t ns_migration_t;

extern const ns_migration_t ns_migrations[];
extern const int ns_migrations_count;

/** @brief Applies every migration not yet in schema_migrations, each in its
 *  own transaction, in order. Safe when several processes call it at once
 *  (a transaction-level advisory lock serialises them).
 *  @returns NS_OK; *applied (may be NULL) is how many were applied now. */
ns_err_t ns_migrate(PGconn *conn, int *applied, ns_error_t *err);

#endif
