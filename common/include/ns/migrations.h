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

/** @brief SET ROLE role for the rest of the session: the migrations'
 *  objects are then owned by role, not by the login (which may change
 *  when its password is rotated). @remark The login must be a member. */
ns_err_t ns_migrate_set_role(PGconn *conn, const char *role, ns_error_t *err);

/** @brief Grants the daemons' role what it needs and nothing more: rows
 *  of the tables, the sequences, EXECUTE on the schema's functions for
 *  the daemons (migration 013, ns_grant_runtime_role), the same on what
 *  the current role creates later. Idempotent, in the migrators' lock.
 *  @returns NS_ERR_PERMANENT when role could alter the schema (a superuser,
 *  an owner's member, CREATE on it) or does not exist. */
ns_err_t ns_migrate_grant_runtime(PGconn *conn, const char *role,
                                  ns_error_t *err);

#endif
