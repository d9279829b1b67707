#include "ops.h"

#include <cjson/cJSON.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns/clock.h"
#include "ns/kafka.h"
#include "ns/migrations.h"
#include "ns/pg.h"
#include "ns/redis.h"
#include "ns/stopsets.h"
#include "planner.h"

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int is_terminal(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "skipped") == 0 || strcmp(status, "cancelled") == 0;
}

/* Whether the run is recorded as failed (false when that is unknown). */
static bool run_failed(ns_planner_t *p, int64_t run_id)
{
    char id[24];
    ns_pg_i64str(run_id, id);
    const char *params[] = {id};
    ns_error_t err;
    PGresult *r = ns_pg_query(ns_planner_pg(p),
                              "SELECT status = 'failed' FROM runs WHERE "
                              "run_id = $1::bigint",
                              1, params, &err);
    bool failed =
        r != NULL && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return failed;
}

int ns_ops_run(const ns_config_t *cfg, const ns_run_opts_t *opts, FILE *out,
               volatile sig_atomic_t *running)
{
    const ns_job_t *job = ns_config_job(cfg, opts->job);
    if (job == NULL) {
        fprintf(stderr, "nightshift run: unknown job \"%s\"\n", opts->job);
        return 2;
    }
    if (opts->reprocess && job->source.reprocess_query == NULL) {
        fprintf(stderr,
                "nightshift run: %s has no source.reprocess_query: "
                "--reprocess does not apply\n",
                job->name);
        return 2;
    }
    if (!opts->reprocess && (opts->since != NULL || opts->type != NULL)) {
        fprintf(stderr, "nightshift run: --since and --type go with "
                        "--reprocess\n");
        return 2;
    }
    if (job->source.kind == NS_SOURCE_STREAM) {
        fprintf(stderr,
                "nightshift run: %s is a stream job: its items arrive on %s "
                "(nightshift ingest), it has no runs\n",
                job->name, job->source.topic);
        return 2;
    }
    ns_error_t err;
    ns_error_clear(&err);
    ns_planner_t *p = ns_planner_new(cfg, &err);
    if (p == NULL) {
        fprintf(stderr, "nightshift run: %s\n", err.msg);
        return 1;
    }
    int64_t slot_ms = -1;
    if (opts->slot != NULL) {
        /* Postgres reads the time: any ISO 8601 form it knows. */
        const char *params[] = {opts->slot, job->timezone};
        PGresult *r = ns_pg_query(
            ns_planner_pg(p),
            "SELECT (extract(epoch FROM CASE WHEN $1 ~ "
            "'(Z|z|[+-][0-9][0-9](:?[0-9][0-9])?)$' THEN $1::timestamptz "
            "ELSE $1::timestamp AT TIME ZONE $2 END) * 1000)::bigint",
            2, params, &err);
        if (r == NULL) {
            fprintf(stderr, "nightshift run: --slot \"%s\": %s\n", opts->slot,
                    err.msg);
            ns_planner_destroy(p);
            return 2;
        }
        slot_ms = ns_pg_int64(r, 0, 0);
        PQclear(r);
    }
    char *args = NULL;
    if (opts->reprocess) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddBoolToObject(a, "reprocess", true);
        if (opts->since != NULL)
            cJSON_AddStringToObject(a, "since", opts->since);
        if (opts->type != NULL)
            cJSON_AddStringToObject(a, "type", opts->type);
        args = cJSON_PrintUnformatted(a);
        cJSON_Delete(a);
    }
    int64_t run_id = 0;
    bool skipped = false;
    int rc = 0;
    ns_err_t created =
        ns_planner_create_run(p, job, NS_RUN_MANUAL, slot_ms, opts->dry_run,
                              args, &run_id, &skipped, &err);
    free(args);
    if (created != NS_OK || ns_planner_emit(p, run_id, &err) != NS_OK) {
        fprintf(stderr, "nightshift run: %s\n", err.msg);
        /* A broken source query or a missing key has failed the run:
         * nothing will resume it. */
        if (run_id > 0 && run_failed(p, run_id))
            fprintf(stderr,
                    "run %lld failed; fix the cause and start a new run\n",
                    (long long)run_id);
        else if (run_id > 0)
            fprintf(stderr,
                    "run %lld is recorded; a producer will resume "
                    "it\n",
                    (long long)run_id);
        ns_planner_destroy(p);
        return 1;
    }
    fprintf(out, "run %lld of %s started%s\n", (long long)run_id, job->name,
            opts->dry_run ? " (dry run)" : "");
    fflush(out);
    if (!opts->wait) {
        ns_planner_destroy(p);
        return 0;
    }
    char id[24];
    ns_pg_i64str(run_id, id);
    const char *params[] = {id};
    int64_t deadline = ns_clock_mono_ms() + (int64_t)opts->timeout_s * 1000;
    char status[32] = "pending";
    /* A change of a run's status is announced on nightshift_runs
     * (migration 015): the wait wakes at the run's end, and polls each
     * second should a notification be missed (e.g. across a reconnect,
     * after which it listens again). */
    PGconn *listening = NULL;
    while (*running) {
        PGconn *pg = ns_planner_pg(p);
        if (pg != NULL && pg != listening) {
            ns_error_t lerr;
            if (ns_pg_exec(pg, "LISTEN nightshift_runs", 0, NULL, &lerr) ==
                NS_OK)
                listening = pg;
        }
        PGresult *r = ns_pg_query(pg,
                                  "SELECT status FROM runs WHERE run_id = "
                                  "$1::bigint",
                                  1, params, &err);
        if (r != NULL && PQntuples(r) == 1)
            snprintf(status, sizeof(status), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if (is_terminal(status))
            break;
        if (opts->timeout_s > 0 && ns_clock_mono_ms() > deadline) {
            fprintf(stderr, "nightshift run: run %s still %s after %d s\n", id,
                    status, opts->timeout_s);
            ns_planner_destroy(p);
            return 1;
        }
        if (pg == NULL || pg != listening || ns_pg_wait_notify(pg, 1000) < 0)
            nap_ms(250);
    }
    ns_planner_destroy(p);
    if (!is_terminal(status))
        return 1;
    rc = ns_ops_status(cfg, id, false, out);
    if (rc != 0)
        return rc;
    return strcmp(status, "succeeded") == 0 ? 0 : 1;
}

/* An environment variable's value, NULL when unset or empty. */
static const char *env_value(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

const char *ns_ops_migrate_dsn(void)
{
    const char *ddl = env_value("NS_PG_DDL_DSN");
    return ddl != NULL ? ddl : env_value("NS_PG_DSN");
}

int ns_ops_migrate(const char *dsn, FILE *out)
{
    const char *ddl_role = env_value("NS_PG_DDL_ROLE");
    const char *runtime_role = env_value("NS_PG_RUNTIME_ROLE");
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_pg_connect(dsn, &err);
    if (pg == NULL) {
        fprintf(stderr, "nightshift migrate: %s\n", err.msg);
        return 1;
    }
    int applied = 0;
    ns_err_t rc = NS_OK;
    if (ddl_role != NULL)
        rc = ns_migrate_set_role(pg, ddl_role, &err);
    if (rc == NS_OK)
        rc = ns_migrate(pg, &applied, &err);
    if (rc == NS_OK && runtime_role != NULL)
        rc = ns_migrate_grant_runtime(pg, runtime_role, &err);
    PQfinish(pg);
    if (rc != NS_OK) {
        fprintf(stderr, "nightshift migrate: %s\n", err.msg);
        return 1;
    }
    fprintf(out, "migrations: %d applied, %d total\n", applied,
            ns_migrations_count);
    if (runtime_role != NULL)
        fprintf(out, "runtime role %s: row privileges granted\n", runtime_role);
    return 0;
}

int ns_ops_dev_broker(const ns_config_t *cfg, const char *port_file, FILE *out,
                      volatile sig_atomic_t *running)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "dev-broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (mc == NULL) {
        fprintf(stderr, "dev-broker: cannot start the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    /* The mock cluster does not implement CreateTopics; make them here. */
    for (size_t i = 0; cfg != NULL && i < cfg->n_jobs; i++) {
        char topic[NS_TOPIC_MAX];
        ns_job_topic(&cfg->jobs[i], topic);
        rd_kafka_mock_topic_create(mc, topic, cfg->jobs[i].max_parallelism, 1);
    }
    if (cfg != NULL)
        rd_kafka_mock_topic_create(mc, cfg->ingest.topic,
                                   cfg->ingest.partitions, 1);
    rd_kafka_mock_topic_create(mc, NS_TOPIC_DLQ, 4, 1);
    ns_retry_tier_t tiers[8];
    int n_tiers =
        cfg ? ns_retry_tiers_parse(cfg->retry_tiers, tiers, 8, NULL) : 0;
    for (int i = 0; i < n_tiers; i++) {
        char topic[NS_TOPIC_MAX];
        snprintf(topic, sizeof(topic), "%s%s", NS_RETRY_TOPIC_PREFIX,
                 tiers[i].label);
        rd_kafka_mock_topic_create(mc, topic, 4, 1);
    }
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    fprintf(out, "%s\n", bootstraps);
    fflush(out);
    if (port_file != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (f != NULL) {
            fprintf(f, "%s\n", bootstraps);
            fclose(f);
            rename(tmp, port_file);
        }
    }
    while (*running)
        nap_ms(100);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

int ns_ops_stopwords_rollback(const ns_config_t *cfg, const char *job_name,
                              const char *lang, FILE *out)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_redis_url_t url;
    if (cfg->redis_url == NULL || cfg->redis_url[0] == '\0') {
        fprintf(stderr, "nightshift: the stopword sets are in Redis: set "
                        "NS_REDIS_URL\n");
        return 2;
    }
    if (ns_redis_url_parse(cfg->redis_url, &url, &err) != NS_OK) {
        fprintf(stderr, "nightshift: %s\n", err.msg);
        return 2;
    }
    redisContext *rc = ns_redis_connect(&url, "ops", 10000, &err);
    if (rc == NULL) {
        fprintf(stderr, "nightshift: %s\n", err.msg);
        return 1;
    }
    /* The sets of the given job, or of every stopword job. */
    int jobs = 0, swapped = 0, status = 0;
    for (size_t i = 0; i < cfg->n_jobs && status == 0; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        if (job_name ? strcmp(job->name, job_name) != 0
                     : strcmp(job->handler, "stopwords.count") != 0)
            continue;
        jobs++;
        const cJSON *p =
            cJSON_GetObjectItemCaseSensitive(job->params, "redis_prefix");
        const char *prefix = cJSON_IsString(p) && p->valuestring[0]
                                 ? p->valuestring
                                 : "stopwords";
        int n = 0;
        if (ns_stopsets_rollback(rc, prefix, lang, &n, &err) != NS_OK) {
            fprintf(stderr, "nightshift: %s\n", err.msg);
            status = 1;
        }
        swapped += n;
    }
    redisFree(rc);
    if (status != 0)
        return status;
    if (jobs == 0) {
        fprintf(stderr, "nightshift: no stopword job%s%s in %s\n",
                job_name ? " " : "", job_name ? job_name : "", cfg->path);
        return 2;
    }
    if (swapped == 0) {
        fprintf(out, "nothing to roll back: no previous stopword set%s%s\n",
                lang ? " for " : "", lang ? lang : "");
        return 1;
    }
    fprintf(out,
            "rolled back the stopword sets of %d language%s (the replaced "
            "sets are now the previous ones)\n",
            swapped, swapped == 1 ? "" : "s");
    return 0;
}
