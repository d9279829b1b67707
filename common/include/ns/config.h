/* config.h: config/jobs.yaml, parsed with libyaml.
 * Errors name "FILE:LINE: message". ${VAR} and ${VAR:-default} are
 * interpolated from the environment; keys under kafka: go to librdkafka. */
#ifndef NS_CONFIG_H
#define NS_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "ns/cron.h"
#include "ns/err.h"

typedef enum ns_concurrency {
    NS_CONC_FORBID = 0,
    NS_CONC_ALLOW,
    NS_CONC_REPLACE,
} ns_concurrency_t;

typedef enum ns_source_kind {
    NS_SOURCE_ONE = 0,
    NS_SOURCE_SQL,
    NS_SOURCE_SHARDS,
    /** Items come from outside (nightshift ingest) on topic, one message
     *  each, keyed by the message key: no runs, no schedule. */
    NS_SOURCE_STREAM,
    /** One item per time window (x per row of services_query): the
     *  windows ending at the run's slot, or every window of the day
     *  before it. */
    NS_SOURCE_WINDOWS,
} ns_source_kind_t;

typedef struct ns_source {
    ns_source_kind_t kind;
    char *query;      /**< sql: the query; every column goes to the payload */
    char *key_column; /**< sql: the column that is the item key */
    /** sql: the column whose value orders items (the Kafka key: items of
     *  one value run one at a time, in order); NULL: the item key. */
    char *order_column;
    /** sql: the query of a `run --reprocess` ($1 since, $2 type). */
    char *reprocess_query;
    /** shards: fixed id ranges [k * shard_size, (k+1) * shard_size) over
     *  table (bigint id, updated_at); only those with rows changed since
     *  the job's watermark once it has one. */
    char *table;
    int shard_size;
    /** shards: how far before the watermark changes are looked for again
     *  (a writer's transaction that began before it and committed after
     *  the enumeration); default 600 s. -1: the default. */
    int overlap_s;
    char *topic; /**< stream: the Kafka topic the items arrive on */
    /** windows: length of one window in seconds (default 900) */
    int window_s;
    /** windows: how many end at the slot (default 1); ignored with
     *  align_day */
    int n_windows;
    /** windows: every window of the day before the slot's day, in the
     *  job's time zone (a daily backfill) */
    bool align_day;
    /** windows: a query whose "service" column gives one item per
     *  (service, window); NULL: one item per window for all services */
    char *services_query;
} ns_source_t;

/** The shards source's table (default "documents") and shard size
 *  (default 100,000 ids). */
static inline const char *ns_source_table(const ns_source_t *s)
{
    return s->table != NULL ? s->table : "documents";
}
static inline int ns_source_shard_size(const ns_source_t *s)
{
    return s->shard_size > 0 ? s->shard_size : 100000;
}
static inline int ns_source_window_s(const ns_source_t *s)
{
    return s->window_s > 0 ? s->window_s : 900;
}
static inline int ns_source_overlap_s(const ns_source_t *s)
{
    return s->overlap_s >= 0 ? s->overlap_s : 600;
}

typedef struct ns_retry {
    int max_attempts;     /**< total attempts, default 3 */
    double backoff_s;     /**< first delay, default 1 */
    double backoff_max_s; /**< cap, default 60 */
} ns_retry_t;

typedef struct ns_kv {
    char *key;
    char *value;
    int line;
} ns_kv_t;

typedef struct ns_job {
    char *name;
    int line;
    char *schedule; /**< NULL: only manual runs */
    ns_cron_t *cron;
    char *timezone; /**< default "UTC" */
    ns_concurrency_t concurrency;
    int starting_deadline_s; /**< default 300 */
    bool suspend;
    ns_source_t source;
    char *handler;
    char *finalizer; /**< may be NULL */
    ns_retry_t retry;
    int max_parallelism; /**< partitions of ns.items.<job>, default 4 */
    /** Items of this job processed at once per worker; 0 (default): up to
     *  worker.max_in_flight. CPU-bound handlers: at most one per core. */
    int max_in_flight;
    cJSON *notify; /**< e.g. {"telegram":{"chat_id":"..."}}; never NULL */
    /** alerts: on the job itself, through notify.teams (else
     *  notify.telegram): no successful run for this many minutes (0: off)
     *  / this many failed runs in a row (0: off). */
    int alert_stale_min;
    int alert_failed_runs;
    cJSON *params; /**< handler settings; never NULL */
} ns_job_t;

typedef struct ns_llm_settings {
    char *base_url; /**< default https://api.perplexity.ai */
    char *model;    /**< default sonar-reasoning-pro */
    char *api_key;  /**< secret */
    int max_tokens; /**< default 500 */
    int timeout_s;  /**< default 60 */
} ns_llm_settings_t;

typedef struct ns_telegram_settings {
    char *api_url;   /**< default https://api.telegram.org */
    char *bot_token; /**< secret */
    int timeout_s;   /**< default 30 */
} ns_telegram_settings_t;

/** Microsoft Teams webhooks by name (notify.teams.webhook of a job names
 *  one): the URLs are secrets (they carry a signature), so the outbox and
 *  the logs only ever see the name. */
typedef struct ns_teams_settings {
    ns_kv_t *webhooks; /**< name → https URL */
    size_t n_webhooks;
    int timeout_s; /**< default 30 */
} ns_teams_settings_t;

/** Confluence (REST content API, Server/DC or Cloud) for the pages the
 *  log analyzer publishes. */
typedef struct ns_confluence_settings {
    char *base_url; /**< default ${NS_CONFLUENCE_URL}, e.g.
                         https://confluence.example.com (Cloud: .../wiki) */
    char *user;     /**< default ${NS_CONFLUENCE_USER}; basic auth */
    char *token;    /**< secret, default ${NS_CONFLUENCE_TOKEN}: the
                         password or API token (basic), or a personal
                         access token (bearer) */
    char *auth;     /**< basic | bearer; default basic with a user, else
                         bearer */
    int timeout_s;  /**< default 60 */
} ns_confluence_settings_t;

/** SMTP for email notifications (notify.email of a job). */
typedef struct ns_smtp_settings {
    char *url;      /**< smtp://host:587 or smtps://host:465; default
                         ${NS_SMTP_URL} */
    char *user;     /**< default ${NS_SMTP_USER}; empty: no login */
    char *password; /**< secret, default ${NS_SMTP_PASSWORD} */
    char *from;     /**< default ${NS_SMTP_FROM}, else nightshift@localhost */
    char *starttls; /**< none (loopback only) | try | required (default) */
    int timeout_s;  /**< default 60 */
} ns_smtp_settings_t;

/** `nightshift ingest`: the Telegram webhook endpoint. */
typedef struct ns_ingest_settings {
    int port;           /**< default 8088 */
    char *bind;         /**< default 0.0.0.0 */
    char *secret_token; /**< X-Telegram-Bot-Api-Secret-Token; secret,
                             default ${NS_TELEGRAM_WEBHOOK_SECRET} */
    char *topic;        /**< default ns.ingest.telegram */
    int partitions;     /**< of the topic when it is created; default 8 */
    size_t max_body;    /**< bytes per update; default 1 MiB */
    int timeout_ms;     /**< for Kafka's acknowledgement; default 10000 */
} ns_ingest_settings_t;

/** `nightshift ui`: the status web page and its /api/v1. */
typedef struct ns_ui_settings {
    int port;       /**< default 8089 */
    char *bind;     /**< default 127.0.0.1 (loopback only) */
    char *token;    /**< bearer token for write actions (DLQ replay);
                         secret, default ${NS_UI_TOKEN}; empty: the page
                         is read-only and no write route exists */
    int refresh_ms; /**< how often the page polls; default 2000 */
} ns_ui_settings_t;

typedef struct ns_config {
    char *path;
    char *pg_dsn;        /**< default ${NS_PG_DSN} */
    char *redis_url;     /**< default ${NS_REDIS_URL} */
    char *kafka_brokers; /**< default ${NS_KAFKA_BROKERS} */
    ns_kv_t *kafka;      /**< librdkafka properties, in file order */
    size_t n_kafka;
    /** Outbound rate limits shared by all replicas: name → "30/s" etc.
     *  Names used: "telegram" (all messages), "telegram.chat" (per chat),
     *  "llm" (chat completions). */
    ns_kv_t *rate_limits;
    size_t n_rate_limits;
    int worker_max_in_flight;    /**< default 8 */
    int worker_metrics_port;     /**< default 9464; 0 = ephemeral, -1 = off */
    int producer_metrics_port;   /**< default 9463 */
    int producer_tick_ms;        /**< default 1000 */
    size_t max_payload_bytes;    /**< default 1 MiB */
    int worker_shutdown_grace_s; /**< SIGTERM drain limit, default 25 */
    int worker_pg_pool_size;     /**< connections per worker, default 16 */
    /** false: this worker processes items but delivers no outbox messages
     *  (dedicated delivery replicas, or holding delivery back); default
     *  true. */
    bool worker_outbox;
    /** Retry tiers, e.g. "5s,30s,5m,1h" (topics ns.retry.<tier>); "" keeps
     *  retries inside the worker. Default "5s,30s,5m,1h". */
    char *retry_tiers;
    ns_llm_settings_t llm;
    ns_telegram_settings_t telegram;
    ns_smtp_settings_t smtp;
    ns_teams_settings_t teams;
    ns_confluence_settings_t confluence;
    ns_ingest_settings_t ingest;
    ns_ui_settings_t ui;
    ns_job_t *jobs;
    size_t n_jobs;
} ns_config_t;

/** @brief The URL of the Teams webhook called name, or NULL. */
const char *ns_config_teams_url(const ns_config_t *cfg, const char *name);

/** Says whether a handler / finalizer name exists (config check uses the
 *  worker's table); NULL skips that check. */
typedef int (*ns_handler_known_fn)(const char *name, int is_finalizer);

/** @brief Loads and validates path.
 *  @returns NULL with err->msg "path:line: message" (code NS_ERR_INVALID)
 *  on unknown keys, bad cron, unknown time zone, unknown handler, duplicate
 *  job names, missing variables, YAML syntax errors.
 *  @remark Secret values (api_key, bot_token) are registered with the log's
 *  redaction list. */
ns_config_t *ns_config_load(const char *path, ns_handler_known_fn known,
                            ns_error_t *err);
void ns_config_destroy(ns_config_t *cfg);

/** @brief The job named name, or NULL. */
const ns_job_t *ns_config_job(const ns_config_t *cfg, const char *name);

#endif
