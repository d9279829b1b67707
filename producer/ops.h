/* ops.h: the operator verbs — run, status, migrate, dev-broker. Each
 * returns a process exit code and prints to out; main.c only parses. */
#ifndef NS_OPS_H
#define NS_OPS_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "ns/config.h"

typedef struct ns_run_opts {
    const char *job;
    bool dry_run;
    bool wait;
    int timeout_s; /**< --wait gives up after this; 0 = no limit */
    /** --slot: the time the run stands for (what a scheduled run of that
     *  slot would have had), e.g. to send the 05:00 report again; NULL:
     *  none. With a zone (2026-11-30T06:00Z, +01:00) or in the job's. */
    const char *slot;
    /** --reprocess: the job's source.reprocess_query instead of its query,
     *  with $1 = since (--since, a time, or NULL) and $2 = type (--type,
     *  or NULL); e.g. structuring again what is already structured. */
    bool reprocess;
    const char *since, *type;
} ns_run_opts_t;

/** @brief Manual run: records it, emits its items; with wait, follows it
 *  to the end. @returns 0 succeeded (or started), 1 failed, 2 usage. */
int ns_ops_run(const ns_config_t *cfg, const ns_run_opts_t *opts, FILE *out,
               volatile sig_atomic_t *running);

/** @brief Runs and per-job health; arg is NULL, a job name or a run id. */
int ns_ops_status(const ns_config_t *cfg, const char *arg, bool json,
                  FILE *out);

/** @brief The connection string migrations use: $NS_PG_DDL_DSN (the DDL
 *  role's), else $NS_PG_DSN; NULL when both are unset or empty (then the
 *  config's postgres:). One environment may hold both. */
const char *ns_ops_migrate_dsn(void);

/** @brief Applies the embedded migrations to dsn: first SET ROLE
 *  $NS_PG_DDL_ROLE when set (the objects' owner, which the login is a
 *  member of), then the migrations, then, when $NS_PG_RUNTIME_ROLE names
 *  the daemons' role, grants it row privileges (ns_migrate_grant_runtime).
 *  @returns 0, or 1 (the cause on stderr). */
int ns_ops_migrate(const char *dsn, FILE *out);

/** @brief Starts librdkafka's mock cluster (the demo's embedded broker),
 *  creates the job topics of cfg (may be NULL) with their partition
 *  counts, writes its bootstrap address to out (and port_file), serves
 *  until *running drops. */
int ns_ops_dev_broker(const ns_config_t *cfg, const char *port_file, FILE *out,
                      volatile sig_atomic_t *running);

/** @brief `nightshift stopwords rollback [--job J] [--lang L]`: swaps the
 *  current and previous stopword sets in Redis (of job J, or of every job
 *  with the stopwords.count handler). @returns the exit status. */
int ns_ops_stopwords_rollback(const ns_config_t *cfg, const char *job,
                              const char *lang, FILE *out);

#endif
