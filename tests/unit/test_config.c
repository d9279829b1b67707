/* test_config.c: config/jobs.yaml loading: fields, defaults, ${VAR}
 * interpolation, free-form maps and every error with its exact line. */
#include <stdbool.h>

#include "ns/config.h"
#include "ns/log.h"
#include "nstest.h"

static char yaml_path[64];

/* Writes yaml to a fresh temp file named in yaml_path, loads it and removes
 * the file again (the path stays valid for comparing messages). */
static ns_config_t *load_yaml(const char *yaml, ns_handler_known_fn known,
                              ns_error_t *err)
{
    snprintf(yaml_path, sizeof(yaml_path), "/tmp/ns_config_XXXXXX");
    int fd = mkstemp(yaml_path);
    ASSERT(fd >= 0);
    size_t len = strlen(yaml);
    ASSERT_EQ(write(fd, yaml, len), len);
    close(fd);
    ns_config_t *cfg = ns_config_load(yaml_path, known, err);
    unlink(yaml_path);
    return cfg;
}

static int known_module(const char *name, int is_finalizer)
{
    static const char *const handlers[] = {"analyzer.project",
                                           "stopwords.count",
                                           "reports.hourly",
                                           "ingest.telegram",
                                           "structure.message",
                                           "logs.window",
                                           "h",
                                           NULL};
    static const char *const finalizers[] = {"analyzer.summary",
                                             "stopwords.merge",
                                             "reports.alert",
                                             "logs.daily_report",
                                             "f",
                                             NULL};
    for (const char *const *n = is_finalizer ? finalizers : handlers;
         *n != NULL; n++)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
}

/* True when yaml fails to load with "PATH:line: msg"; when prefix is set,
 * msg only has to start the message. Prints both on a mismatch. */
static bool fails_with(const char *yaml, int line, const char *msg, bool prefix)
{
    ns_error_t err;
    ns_config_t *cfg = load_yaml(yaml, known_module, &err);
    char want[600];
    snprintf(want, sizeof(want), "%s:%d: %s", yaml_path, line, msg);
    if (cfg != NULL) {
        fprintf(stderr, "loaded, expected: %s\n", want);
        ns_config_destroy(cfg);
        return false;
    }
    size_t n = prefix ? strlen(want) : sizeof(want);
    if (err.code != NS_ERR_INVALID || strncmp(err.msg, want, n) != 0) {
        fprintf(stderr, "  got:      %s (%s)\n  expected: %s\n", err.msg,
                ns_err2str(err.code), want);
        return false;
    }
    return true;
}

#define ASSERT_ERROR(yaml, line, msg) ASSERT(fails_with(yaml, line, msg, 0))
#define ASSERT_ERROR_PREFIX(yaml, line, msg)                                   \
    ASSERT(fails_with(yaml, line, msg, 1))

/* Lines 1-4: the smallest valid file. */
#define MIN_JOB                                                                \
    "jobs:\n"                                                                  \
    "  - name: a\n"                                                            \
    "    handler: h\n"                                                         \
    "    source: {type: one}\n"

static ns_config_t *load_ok(const char *yaml)
{
    ns_error_t err;
    ns_config_t *cfg = load_yaml(yaml, known_module, &err);
    if (cfg == NULL)
        NSTEST_FAIL("load failed: %s", err.msg);
    ASSERT_EQ(err.code, NS_OK);
    return cfg;
}

static char *json_of(const cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);
    ASSERT(text != NULL);
    return text;
}

#define ASSERT_JSON(json, expected)                                            \
    do {                                                                       \
        char *nstest_json = json_of(json);                                     \
        ASSERT_STREQ(nstest_json, expected);                                   \
        free(nstest_json);                                                     \
    } while (0)

TEST(full_file_every_field)
{
    ns_config_t *cfg =
        load_ok("version: 1\n"                                         /* 1 */
                "connections:\n"                                       /* 2 */
                "  postgres: postgres://ns@db/ns\n"                    /* 3 */
                "  redis: redis://cache:6379/1\n"                      /* 4 */
                "  kafka: k1:9092,k2:9092\n"                           /* 5 */
                "kafka:\n"                                             /* 6 */
                "  compression.type: lz4\n"                            /* 7 */
                "worker:\n"                                            /* 8 */
                "  max_in_flight: 16\n"                                /* 9 */
                "  metrics_port: -1\n"                                 /* 10 */
                "  max_payload_bytes: 2097152\n"                       /* 11 */
                "producer:\n"                                          /* 12 */
                "  metrics_port: 0\n"                                  /* 13 */
                "  tick_ms: 250\n"                                     /* 14 */
                "llm:\n"                                               /* 15 */
                "  base_url: http://llm.local/v1\n"                    /* 16 */
                "  model: gpt-test\n"                                  /* 17 */
                "  api_key: sk-test-secret-123\n"                      /* 18 */
                "  max_tokens: 900\n"                                  /* 19 */
                "  timeout_seconds: 90\n"                              /* 20 */
                "telegram:\n"                                          /* 21 */
                "  api_url: http://tg.local\n"                         /* 22 */
                "  bot_token: 123456:bot-secret\n"                     /* 23 */
                "  timeout_seconds: 15\n"                              /* 24 */
                "jobs:\n"                                              /* 25 */
                "  - name: batch-analyzer\n"                           /* 26 */
                "    schedule: \"0 2 * * *\"\n"                        /* 27 */
                "    timezone: Europe/Berlin\n"                        /* 28 */
                "    concurrency_policy: Replace\n"                    /* 29 */
                "    starting_deadline_seconds: 600\n"                 /* 30 */
                "    suspend: true\n"                                  /* 31 */
                "    source:\n"                                        /* 32 */
                "      type: sql\n"                                    /* 33 */
                "      query: SELECT id, name FROM projects\n"         /* 34 */
                "      key: id\n"                                      /* 35 */
                "    handler: analyzer.project\n"                      /* 36 */
                "    finalizer: analyzer.summary\n"                    /* 37 */
                "    retry: {max_attempts: 5, backoff_seconds: 2.5,\n" /* 38 */
                "            backoff_max_seconds: 120}\n"              /* 39 */
                "    max_parallelism: 16\n"                            /* 40 */
                "    notify:\n"                                        /* 41 */
                "      telegram: {chat_id: \"42\"}\n"                  /* 42 */
                "    params: {depth: 2}\n"                             /* 43 */
                "  - name: second.job_2\n"                             /* 44 */
                "    handler: h\n"                                     /* 45 */
                "    source: {type: one}\n"                            /* 46 */
                "    concurrency_policy: Allow\n");                    /* 47 */
    ASSERT_STREQ(cfg->path, yaml_path);
    ASSERT_STREQ(cfg->pg_dsn, "postgres://ns@db/ns");
    ASSERT_STREQ(cfg->redis_url, "redis://cache:6379/1");
    ASSERT_STREQ(cfg->kafka_brokers, "k1:9092,k2:9092");
    ASSERT_EQ(cfg->n_kafka, 1);
    ASSERT_STREQ(cfg->kafka[0].key, "compression.type");
    ASSERT_STREQ(cfg->kafka[0].value, "lz4");
    ASSERT_EQ(cfg->kafka[0].line, 7);
    ASSERT_EQ(cfg->worker_max_in_flight, 16);
    ASSERT_EQ(cfg->worker_metrics_port, -1);
    ASSERT_EQ(cfg->max_payload_bytes, 2097152);
    ASSERT_EQ(cfg->producer_metrics_port, 0);
    ASSERT_EQ(cfg->producer_tick_ms, 250);
    ASSERT_STREQ(cfg->llm.base_url, "http://llm.local/v1");
    ASSERT_STREQ(cfg->llm.model, "gpt-test");
    ASSERT_STREQ(cfg->llm.api_key, "sk-test-secret-123");
    ASSERT_EQ(cfg->llm.max_tokens, 900);
    ASSERT_EQ(cfg->llm.timeout_s, 90);
    ASSERT_STREQ(cfg->telegram.api_url, "http://tg.local");
    ASSERT_STREQ(cfg->telegram.bot_token, "123456:bot-secret");
    ASSERT_EQ(cfg->telegram.timeout_s, 15);

    ASSERT_EQ(cfg->n_jobs, 2);
    const ns_job_t *job = &cfg->jobs[0];
    ASSERT_STREQ(job->name, "batch-analyzer");
    ASSERT_EQ(job->line, 26);
    ASSERT_STREQ(job->schedule, "0 2 * * *");
    ASSERT(job->cron != NULL);
    ASSERT_STREQ(job->timezone, "Europe/Berlin");
    ASSERT_EQ(job->concurrency, NS_CONC_REPLACE);
    ASSERT_EQ(job->starting_deadline_s, 600);
    ASSERT_EQ(job->suspend, true);
    ASSERT_EQ(job->source.kind, NS_SOURCE_SQL);
    ASSERT_STREQ(job->source.query, "SELECT id, name FROM projects");
    ASSERT_STREQ(job->source.key_column, "id");
    ASSERT_STREQ(job->handler, "analyzer.project");
    ASSERT_STREQ(job->finalizer, "analyzer.summary");
    ASSERT_EQ(job->retry.max_attempts, 5);
    ASSERT(job->retry.backoff_s == 2.5);
    ASSERT(job->retry.backoff_max_s == 120.0);
    ASSERT_EQ(job->max_parallelism, 16);
    ASSERT_JSON(job->notify, "{\"telegram\":{\"chat_id\":\"42\"}}");
    ASSERT_JSON(job->params, "{\"depth\":2}");

    job = &cfg->jobs[1];
    ASSERT_STREQ(job->name, "second.job_2");
    ASSERT_EQ(job->line, 44);
    ASSERT_EQ(job->concurrency, NS_CONC_ALLOW);
    ASSERT(ns_config_job(cfg, "second.job_2") == job);
    ASSERT(ns_config_job(cfg, "batch-analyzer") == &cfg->jobs[0]);
    ASSERT(ns_config_job(cfg, "nope") == NULL);
    ASSERT(ns_config_job(cfg, NULL) == NULL);

    /* Secrets are masked in logs from now on. */
    char *line = ns_log_redact("key=sk-test-secret-123 bot=123456:bot-secret");
    ASSERT_STREQ(line, "key=*** bot=***");
    free(line);
    ns_config_destroy(cfg);
}

TEST(defaults)
{
    unsetenv("NS_PG_DSN");
    unsetenv("NS_REDIS_URL");
    unsetenv("NS_KAFKA_BROKERS");
    unsetenv("NS_LLM_API_KEY");
    unsetenv("NS_TELEGRAM_BOT_TOKEN");
    ns_config_t *cfg = load_ok(MIN_JOB);
    ASSERT_STREQ(cfg->pg_dsn, "");
    ASSERT_STREQ(cfg->redis_url, "");
    ASSERT_STREQ(cfg->kafka_brokers, "");
    ASSERT_EQ(cfg->n_kafka, 0);
    ASSERT_EQ(cfg->worker_max_in_flight, 8);
    ASSERT_EQ(cfg->worker_metrics_port, 9464);
    ASSERT_EQ(cfg->max_payload_bytes, 1024 * 1024);
    ASSERT_EQ(cfg->producer_metrics_port, 9463);
    ASSERT_EQ(cfg->producer_tick_ms, 1000);
    ASSERT_STREQ(cfg->llm.base_url, "https://api.perplexity.ai");
    ASSERT_STREQ(cfg->llm.model, "sonar-reasoning-pro");
    ASSERT_STREQ(cfg->llm.api_key, "");
    ASSERT_EQ(cfg->llm.max_tokens, 500);
    ASSERT_EQ(cfg->llm.timeout_s, 60);
    ASSERT_STREQ(cfg->telegram.api_url, "https://api.telegram.org");
    ASSERT_STREQ(cfg->telegram.bot_token, "");
    ASSERT_EQ(cfg->telegram.timeout_s, 30);

    ASSERT_EQ(cfg->n_jobs, 1);
    const ns_job_t *job = &cfg->jobs[0];
    ASSERT_STREQ(job->name, "a");
    ASSERT_EQ(job->line, 2);
    ASSERT(job->schedule == NULL);
    ASSERT(job->cron == NULL);
    ASSERT_STREQ(job->timezone, "UTC");
    ASSERT_EQ(job->concurrency, NS_CONC_FORBID);
    ASSERT_EQ(job->starting_deadline_s, 300);
    ASSERT_EQ(job->suspend, false);
    ASSERT_EQ(job->source.kind, NS_SOURCE_ONE);
    ASSERT(job->source.query == NULL);
    ASSERT(job->source.key_column == NULL);
    ASSERT_STREQ(job->handler, "h");
    ASSERT(job->finalizer == NULL);
    ASSERT_EQ(job->retry.max_attempts, 3);
    ASSERT(job->retry.backoff_s == 1.0);
    ASSERT(job->retry.backoff_max_s == 60.0);
    ASSERT_EQ(job->max_parallelism, 4);
    ASSERT_EQ(job->max_in_flight, 0);
    ASSERT_JSON(job->notify, "{}");
    ASSERT_JSON(job->params, "{}");
    ns_config_destroy(cfg);

    /* Left-out connections come from the environment. */
    setenv("NS_PG_DSN", "host=db", 1);
    setenv("NS_REDIS_URL", "redis://r", 1);
    setenv("NS_KAFKA_BROKERS", "k:9092", 1);
    setenv("NS_LLM_API_KEY", "sk-from-env", 1);
    setenv("NS_TELEGRAM_BOT_TOKEN", "tg-from-env", 1);
    cfg = load_ok(MIN_JOB);
    ASSERT_STREQ(cfg->pg_dsn, "host=db");
    ASSERT_STREQ(cfg->redis_url, "redis://r");
    ASSERT_STREQ(cfg->kafka_brokers, "k:9092");
    ASSERT_STREQ(cfg->llm.api_key, "sk-from-env");
    ASSERT_STREQ(cfg->telegram.bot_token, "tg-from-env");
    ns_config_destroy(cfg);

    /* A null value ("key:" alone) keeps the default too. */
    cfg = load_ok("worker:\n"
                  "  max_in_flight:\n"
                  "llm: ~\n" MIN_JOB "    finalizer:\n");
    ASSERT_EQ(cfg->worker_max_in_flight, 8);
    ASSERT_STREQ(cfg->llm.model, "sonar-reasoning-pro");
    ASSERT(cfg->jobs[0].finalizer == NULL);
    ns_config_destroy(cfg);
}

TEST(shards_source)
{
    ns_config_t *cfg = load_ok("jobs:\n  - name: a\n    handler: h\n"
                               "    source: {type: shards, table: docs2, "
                               "shard_size: 5000}\n");
    ASSERT_EQ(cfg->jobs[0].source.kind, NS_SOURCE_SHARDS);
    ASSERT_STREQ(ns_source_table(&cfg->jobs[0].source), "docs2");
    ASSERT_EQ(ns_source_shard_size(&cfg->jobs[0].source), 5000);
    ns_config_destroy(cfg);
    cfg = load_ok("jobs:\n  - name: a\n    handler: h\n"
                  "    source: {type: shards}\n");
    ASSERT_STREQ(ns_source_table(&cfg->jobs[0].source), "documents");
    ASSERT_EQ(ns_source_shard_size(&cfg->jobs[0].source), 100000);
    ns_config_destroy(cfg);
}

TEST(job_max_in_flight)
{
    ns_config_t *cfg = load_ok(MIN_JOB "    max_in_flight: 3\n");
    ASSERT_EQ(cfg->jobs[0].max_in_flight, 3);
    ns_config_destroy(cfg);
}

TEST(interpolation)
{
    setenv("NS_T_HOST", "db", 1);
    setenv("NS_T_PORT", "9000", 1);
    setenv("NS_T_EMPTY", "", 1);
    unsetenv("NS_T_USER");
    ns_config_t *cfg =
        load_ok("connections:\n"
                "  postgres: \"host=${NS_T_HOST} port=${NS_T_PORT} "
                "user=${NS_T_USER:-ns}\"\n"
                "  redis: ${NS_T_EMPTY:-redis://localhost}\n"
                "  kafka: cost $$5 and ${NS_T_HOST}$$\n"
                "worker:\n"
                "  metrics_port: ${NS_T_PORT}\n"
                "  max_in_flight: \"${NS_T_MISSING:-12}\"\n"
                "llm:\n"
                "  api_key: ${NS_T_EMPTY}\n"
                "  model: a$b $\n"
                "  base_url: ${NS_T_USER:-}\n" MIN_JOB);
    ASSERT_STREQ(cfg->pg_dsn, "host=db port=9000 user=ns");
    ASSERT_STREQ(cfg->redis_url, "redis://localhost");
    ASSERT_STREQ(cfg->kafka_brokers, "cost $5 and db$");
    ASSERT_EQ(cfg->worker_metrics_port, 9000);
    ASSERT_EQ(cfg->worker_max_in_flight, 12);
    ASSERT_STREQ(cfg->llm.api_key, "");
    ASSERT_STREQ(cfg->llm.model, "a$b $");
    ASSERT_STREQ(cfg->llm.base_url, "");
    ns_config_destroy(cfg);

    /* Job fields and $${X} (a literal "${X}"). */
    setenv("NS_T_JOB", "nightly", 1);
    cfg = load_ok("jobs:\n"
                  "  - name: ${NS_T_JOB}-run\n"
                  "    handler: h\n"
                  "    source: {type: sql, query: \"SELECT '$${X}'\", "
                  "key: id}\n");
    ASSERT_STREQ(cfg->jobs[0].name, "nightly-run");
    ASSERT_STREQ(cfg->jobs[0].source.query, "SELECT '${X}'");
    ns_config_destroy(cfg);
}

TEST(interpolation_errors)
{
    unsetenv("NS_T_UNSET");
    ASSERT_ERROR("connections:\n"
                 "  postgres: host=db\n"
                 "  redis: redis://${NS_T_UNSET}:6379\n" MIN_JOB,
                 3, "environment variable NS_T_UNSET is not set");
    ASSERT_ERROR(MIN_JOB "    params:\n"
                         "      deep: [1, \"${NS_T_UNSET}\"]\n",
                 6, "environment variable NS_T_UNSET is not set");
    ASSERT_ERROR("llm:\n"
                 "  model: x${NS_T_UNSET\n" MIN_JOB,
                 2, "unterminated \"${\" in \"${NS_T_UNSET\"");
    ASSERT_ERROR("llm:\n"
                 "  model: ${1BAD}\n" MIN_JOB,
                 2, "bad variable reference \"${1BAD}\"");
    ASSERT_ERROR("llm:\n"
                 "  model: ${A-b}\n" MIN_JOB,
                 2, "bad variable reference \"${A-b}\"");
    /* Converted after interpolation: the variable's text must be a number. */
    setenv("NS_T_WORD", "eight", 1);
    ASSERT_ERROR("worker:\n"
                 "  max_in_flight: ${NS_T_WORD}\n" MIN_JOB,
                 2, "max_in_flight: expected an integer, got \"eight\"");
}

TEST(unknown_keys)
{
    ASSERT_ERROR(MIN_JOB "    handlr: x\n", 5,
                 "unknown key \"handlr\" in job \"a\"");
    ASSERT_ERROR("version: 1\n"
                 "wrker: {}\n" MIN_JOB,
                 2, "unknown top-level key \"wrker\"");
    ASSERT_ERROR("worker:\n"
                 "  max_inflight: 3\n" MIN_JOB,
                 2, "unknown key \"max_inflight\" in worker");
    ASSERT_ERROR("connections:\n"
                 "  pg: x\n" MIN_JOB,
                 2, "unknown key \"pg\" in connections");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source:\n"
                 "      type: sql\n"
                 "      qry: SELECT 1\n",
                 6, "unknown key \"qry\" in source of job \"a\"");
    ASSERT_ERROR(MIN_JOB "    retry:\n"
                         "      attempts: 3\n",
                 6, "unknown key \"attempts\" in retry of job \"a\"");
    /* Before the name is known, the job is named by position. */
    ASSERT_ERROR(MIN_JOB "  - handlr: x\n", 5,
                 "unknown key \"handlr\" in job #2");
}

TEST(type_errors)
{
    ASSERT_ERROR(MIN_JOB "    finalizer: {x: 1}\n", 5,
                 "finalizer: expected a scalar, got a mapping");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler:\n"
                 "      - h\n"
                 "    source: {type: one}\n",
                 4, "handler: expected a scalar, got a sequence");
    ASSERT_ERROR("worker: 5\n" MIN_JOB, 1,
                 "worker: expected a mapping, got a scalar");
    ASSERT_ERROR(MIN_JOB "    retry: [1]\n", 5,
                 "retry of job \"a\": expected a mapping, got a sequence");
    ASSERT_ERROR(MIN_JOB "    max_parallelism: four\n", 5,
                 "max_parallelism: expected an integer, got \"four\"");
    ASSERT_ERROR(MIN_JOB "    max_parallelism: 2.5\n", 5,
                 "max_parallelism: expected an integer, got \"2.5\"");
    ASSERT_ERROR(MIN_JOB "    max_parallelism: 1025\n", 5,
                 "max_parallelism: 1025 is out of range (1..1024)");
    ASSERT_ERROR(MIN_JOB "    max_parallelism: 0\n", 5,
                 "max_parallelism: 0 is out of range (1..1024)");
    ASSERT_ERROR(MIN_JOB "    max_in_flight: 0\n", 5,
                 "max_in_flight: 0 is out of range (1..65536)");
    ASSERT_ERROR(MIN_JOB "    max_in_flight: lots\n", 5,
                 "max_in_flight: expected an integer, got \"lots\"");
    ASSERT_ERROR("worker:\n"
                 "  max_in_flight: 0\n" MIN_JOB,
                 2, "max_in_flight: 0 is out of range (1..65536)");
    ASSERT_ERROR("worker:\n"
                 "  metrics_port: 99999999999999999999999\n" MIN_JOB,
                 2,
                 "metrics_port: 99999999999999999999999 is out of range "
                 "(-1..65535)");
    ASSERT_ERROR(MIN_JOB "    suspend: yes\n", 5,
                 "suspend: expected true or false, got \"yes\"");
    ASSERT_ERROR(MIN_JOB "    retry: {backoff_seconds: soon}\n", 5,
                 "backoff_seconds: expected a number, got \"soon\"");
    ASSERT_ERROR(MIN_JOB "    retry: {backoff_seconds: 30,\n"
                         "            backoff_max_seconds: 10}\n",
                 5,
                 "retry of job \"a\": backoff_max_seconds (10) is less than "
                 "backoff_seconds (30)");
    ASSERT_ERROR(MIN_JOB "    notify: [telegram]\n", 5,
                 "notify: expected a mapping, got a sequence");
    ASSERT_ERROR("kafka:\n"
                 "  linger.ms: [5]\n" MIN_JOB,
                 2, "kafka.linger.ms: expected a scalar, got a sequence");
    ASSERT_ERROR("kafka:\n"
                 "  linger.ms:\n" MIN_JOB,
                 2, "kafka.linger.ms: no value");
    ASSERT_ERROR("version: 2\n" MIN_JOB, 1,
                 "unsupported version 2 (this build reads 1)");
    ASSERT_ERROR("jobs:\n"
                 "  name: a\n",
                 2, "jobs: expected a sequence, got a mapping");
    ASSERT_ERROR("jobs:\n"
                 "  - just-a-name\n",
                 2, "job #1: expected a mapping, got a scalar");
    ASSERT_ERROR("- a\n", 1, "top level: expected a mapping, got a sequence");
}

TEST(value_errors)
{
    ASSERT_ERROR("jobs:\n"
                 "  - name: Batch_Analyzer\n"
                 "    handler: h\n",
                 2,
                 "bad job name \"Batch_Analyzer\": use a-z, 0-9, '.', '_' "
                 "and '-', starting with a letter or digit");
    ASSERT_ERROR("jobs:\n"
                 "  - name: -a\n",
                 2,
                 "bad job name \"-a\": use a-z, 0-9, '.', '_' and '-', "
                 "starting with a letter or digit");
    char yaml[400];
    snprintf(yaml, sizeof(yaml), "jobs:\n  - name: %0101d\n", 0);
    ASSERT_ERROR(yaml, 2,
                 "job name \"00000000000000000000...\" is longer than 100 "
                 "characters");
    ASSERT_ERROR(MIN_JOB "    concurrency_policy: forbid\n", 5,
                 "unknown concurrency_policy \"forbid\" (Forbid, Allow or "
                 "Replace)");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source: {type: mongo}\n",
                 4,
                 "unknown source type \"mongo\" (sql, shards, one, windows or "
                 "stream)");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source: {type: shards, query: \"SELECT 1\"}\n",
                 4,
                 "source of job \"a\": \"shards\" takes table and "
                 "shard_size, not query or key");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source: {type: one, shard_size: 5}\n",
                 4,
                 "source of job \"a\": table, shard_size and "
                 "watermark_overlap_seconds are for \"shards\"");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source: {type: sql, query: SELECT 1}\n",
                 4, "sql source of job \"a\" has no key");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source:\n"
                 "      key: id\n"
                 "      type: sql\n",
                 5, "sql source of job \"a\" has no query");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source: {query: SELECT 1}\n",
                 4, "source of job \"a\" has no type");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source: {type: one, key: id}\n",
                 4, "source of job \"a\": \"one\" takes no query or key");
}

TEST(cron_timezone_and_handlers)
{
    ASSERT_ERROR_PREFIX(MIN_JOB "    schedule: \"0 2 * *\"\n", 5,
                        "schedule: cron \"0 2 * *\": ");
    ASSERT_ERROR_PREFIX(MIN_JOB "    timezone: UTC\n"
                                "    schedule: 61 * * * *\n",
                        6, "schedule: cron \"61 * * * *\": minute");
    ASSERT_ERROR(MIN_JOB "    timezone: Mars/Base\n", 5,
                 "unknown time zone \"Mars/Base\"");
    ASSERT_ERROR("jobs:\n"
                 "  - name: stopwords-refresh\n"
                 "    source: {type: one}\n"
                 "    handler: stopwords.cnt\n",
                 4, "unknown handler \"stopwords.cnt\"");
    ASSERT_ERROR(MIN_JOB "    finalizer: analyzer.summry\n", 5,
                 "unknown finalizer \"analyzer.summry\"");
    /* A handler name is only a finalizer's when the callback says so. */
    ASSERT_ERROR(MIN_JOB "    finalizer: analyzer.project\n", 5,
                 "unknown finalizer \"analyzer.project\"");

    /* Without the callback any name is accepted. */
    ns_error_t err;
    ns_config_t *cfg = load_yaml("jobs:\n"
                                 "  - name: a\n"
                                 "    handler: anything.at-all\n"
                                 "    source: {type: one}\n",
                                 NULL, &err);
    ASSERT(cfg != NULL);
    ASSERT_STREQ(cfg->jobs[0].handler, "anything.at-all");
    ns_config_destroy(cfg);
}

TEST(required_fields)
{
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    source: {type: one}\n",
                 2, "job \"a\" has no handler");
    ASSERT_ERROR("jobs:\n"
                 "  - name: a\n"
                 "    handler: h\n"
                 "    source:\n",
                 2, "job \"a\" has no source");
    ASSERT_ERROR(MIN_JOB "  - handler: h\n"
                         "    source: {type: one}\n",
                 5, "job #2 has no name");
    ASSERT_ERROR(MIN_JOB "  - {handler: h, source: {type: one}, name: ~}\n", 5,
                 "job #2 has no name");
    ASSERT_ERROR("version: 1\n"
                 "worker: {max_in_flight: 2}\n",
                 1, "missing required key \"jobs\"");
    ASSERT_ERROR("version: 1\n"
                 "jobs:\n",
                 1, "missing required key \"jobs\"");

    /* An empty list is a valid file with nothing to schedule. */
    ns_config_t *cfg = load_ok("jobs: []\n");
    ASSERT_EQ(cfg->n_jobs, 0);
    ASSERT(ns_config_job(cfg, "a") == NULL);
    ns_config_destroy(cfg);
}

TEST(duplicates)
{
    ASSERT_ERROR(MIN_JOB "  - name: b\n"
                         "    handler: h\n"
                         "    source: {type: one}\n"
                         "  - name: a\n"
                         "    handler: h\n"
                         "    source: {type: one}\n",
                 8, "duplicate job name \"a\" (first at line 2)");
    ASSERT_ERROR("worker:\n"
                 "  max_in_flight: 2\n"
                 "  metrics_port: 1\n"
                 "  max_in_flight: 3\n" MIN_JOB,
                 4, "duplicate key \"max_in_flight\" (first at line 2)");
    ASSERT_ERROR(MIN_JOB "    handler: f\n", 5,
                 "duplicate key \"handler\" (first at line 3)");
    ASSERT_ERROR(MIN_JOB "jobs: []\n", 5,
                 "duplicate key \"jobs\" (first at line 1)");
    ASSERT_ERROR("kafka:\n"
                 "  acks: all\n"
                 "  acks: 1\n" MIN_JOB,
                 3, "duplicate key \"acks\" (first at line 2)");
    ASSERT_ERROR(MIN_JOB "    params:\n"
                         "      a: {x: 1,\n"
                         "          x: 2}\n",
                 7, "duplicate key \"x\" (first at line 6)");
}

TEST(yaml_syntax_errors)
{
    ASSERT_ERROR_PREFIX("jobs:\n"
                        "  - name: a\n"
                        "   handler: h\n",
                        3, "did not find expected '-' indicator");
    ASSERT_ERROR_PREFIX("jobs:\n"
                        "  - name: a\n"
                        "    handler: [h\n"
                        "    source: {type: one}\n",
                        4, "did not find expected ',' or ']'");
    ASSERT_ERROR("version: 1\n"
                 "worker: *nope\n" MIN_JOB,
                 2, "found undefined alias");
    ASSERT_ERROR(MIN_JOB "---\n"
                         "jobs: []\n",
                 6, "only one YAML document is allowed");
    ASSERT_ERROR_PREFIX("version: 1\n"
                        "llm:\n"
                        "  model: \"\xff\"\n",
                        3, "invalid leading UTF-8 octet");
}

TEST(file_errors)
{
    ns_error_t err;
    ASSERT(ns_config_load("/nonexistent/jobs.yaml", NULL, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    ASSERT_STREQ(err.msg, "/nonexistent/jobs.yaml: No such file or directory");
    ASSERT(ns_config_load("/tmp", NULL, &err) == NULL);
    ASSERT_STREQ(err.msg, "/tmp: Is a directory");

    ns_config_t *cfg = load_yaml("", NULL, &err);
    ASSERT(cfg == NULL);
    char want[128];
    snprintf(want, sizeof(want), "%s: empty file (\"jobs\" is required)",
             yaml_path);
    ASSERT_STREQ(err.msg, want);

    /* A NULL error pointer is allowed. */
    ASSERT(ns_config_load("/nonexistent/jobs.yaml", NULL, NULL) == NULL);
    ns_config_destroy(NULL);
}

TEST(kafka_passthrough_in_order)
{
    setenv("NS_T_LINGER", "7", 1);
    ns_config_t *cfg = load_ok("kafka:\n"
                               "  compression.type: lz4\n"
                               "  linger.ms: ${NS_T_LINGER}\n"
                               "  enable.idempotence: true\n"
                               "  client.id: \"nightshift\"\n"
                               "  acks: -1\n"
                               "  batch.num.messages: 10000\n" MIN_JOB);
    static const char *const want[][2] = {
        {"compression.type", "lz4"},
        {"linger.ms", "7"},
        {"enable.idempotence", "true"},
        {"client.id", "nightshift"},
        {"acks", "-1"},
        {"batch.num.messages", "10000"},
    };
    ASSERT_EQ(cfg->n_kafka, 6);
    for (size_t i = 0; i < 6; i++) {
        ASSERT_STREQ(cfg->kafka[i].key, want[i][0]);
        ASSERT_STREQ(cfg->kafka[i].value, want[i][1]);
        ASSERT_EQ(cfg->kafka[i].line, (int)i + 2);
    }
    ns_config_destroy(cfg);
}

TEST(notify_params_to_json)
{
    setenv("NS_T_CHAT", "-1001234567890", 1);
    unsetenv("NS_T_UNSET_NUM");
    ns_config_t *cfg = load_ok(
        "teams: {webhooks: {ops: \"https://example.test/hook?a=1\"}}\n" MIN_JOB
        "    notify:\n"
        "      telegram: {chat_id: \"${NS_T_CHAT:-100}\", "
        "silent: false}\n"
        "      teams:\n"
        "        webhook: ops\n"
        "        levels: [critical, 2, 2.5, ~, null, \"3\", 'true', "
        "True]\n"
        "    params:\n"
        "      int: 42\n"
        "      neg: -7\n"
        "      float: 1.5e3\n"
        "      chat: ${NS_T_CHAT}\n"
        "      big: 12345678901234567890\n"
        "      zip: \"007\"\n"
        "      empty:\n"
        "      text: |\n"
        "        two\n"
        "        lines\n"
        "      nested: {list: [{a: 1}, []], obj: {}}\n"
        "      env: ${NS_T_UNSET_NUM:-5}\n"
        "      version: 1.2.3\n"
        "      inf: .inf\n");
    const ns_job_t *job = &cfg->jobs[0];
    ASSERT_JSON(job->notify,
                "{\"telegram\":{\"chat_id\":\"-1001234567890\",\"silent\":"
                "false},\"teams\":{\"webhook\":\"ops\",\"levels\":["
                "\"critical\",2,2.5,null,null,\"3\","
                "\"true\",true]}}");
    ASSERT_JSON(job->params,
                "{\"int\":42,\"neg\":-7,\"float\":1500,\"chat\":"
                "-1001234567890,\"big\":\"12345678901234567890\",\"zip\":"
                "\"007\",\"empty\":null,\"text\":\"two\\nlines\\n\","
                "\"nested\":{\"list\":[{\"a\":1},[]],\"obj\":{}},\"env\":5,"
                "\"version\":\"1.2.3\",\"inf\":\".inf\"}");
    ns_config_destroy(cfg);

    /* notify: ~ and params: {} stay empty objects, never NULL. */
    cfg = load_ok(MIN_JOB "    notify: ~\n"
                          "    params: {}\n");
    ASSERT_JSON(cfg->jobs[0].notify, "{}");
    ASSERT_JSON(cfg->jobs[0].params, "{}");
    ns_config_destroy(cfg);
}

TEST(aliases)
{
    ns_config_t *cfg =
        load_ok("jobs:\n"
                "  - name: a\n"
                "    handler: h\n"
                "    source: &one {type: one}\n"
                "    retry: &r {max_attempts: 7, backoff_seconds: 3}\n"
                "    params: &p {list: [1, 2]}\n"
                "  - name: b\n"
                "    handler: h\n"
                "    source: *one\n"
                "    retry: *r\n"
                "    params: {again: *p}\n");
    ASSERT_EQ(cfg->jobs[1].retry.max_attempts, 7);
    ASSERT(cfg->jobs[1].retry.backoff_s == 3.0);
    ASSERT_JSON(cfg->jobs[1].params, "{\"again\":{\"list\":[1,2]}}");
    ns_config_destroy(cfg);

    /* An alias may point into its own node: refused, not looped on. */
    ASSERT_ERROR(MIN_JOB "    params: &loop {self: *loop}\n", 5,
                 "self: nested deeper than 64 levels");
    /* The "billion laughs": each level doubles the values. */
    char yaml[4096] = MIN_JOB "    params:\n      l0: &l0 [x, x]\n";
    for (int i = 1; i < 30; i++) {
        size_t len = strlen(yaml);
        snprintf(yaml + len, sizeof(yaml) - len,
                 "      l%d: &l%d [*l%d, *l%d]\n", i, i, i - 1, i - 1);
    }
    ASSERT_ERROR(yaml, 6, "l14: too many values (alias expansion?)");
}

static const char *src_dir(void)
{
    const char *dir = getenv("NS_SRC");
    return dir != NULL ? dir : "../..";
}

TEST(stream_sources_take_a_topic_and_nothing_of_runs)
{
    ASSERT(fails_with(
        "jobs:\n"
        "  - name: a\n"
        "    handler: h\n"
        "    source: {type: stream}\n",
        4, "source of job \"a\": a \"stream\" source needs a topic", 1));
    ASSERT(fails_with(
        "jobs:\n"
        "  - name: a\n"
        "    handler: h\n"
        "    schedule: \"@hourly\"\n"
        "    source: {type: stream, topic: t}\n",
        5, "source of job \"a\": a \"stream\" job has no query, key, schedule",
        1));
    ASSERT(fails_with(
        "jobs:\n"
        "  - name: a\n"
        "    handler: h\n"
        "    source: {type: stream, topic: ns.items.b}\n",
        4, "source of job \"a\": topic ns.items.b is reserved for job items",
        0));
    ASSERT(fails_with(
        "jobs:\n"
        "  - name: a\n"
        "    handler: h\n"
        "    source: {type: one, topic: t}\n",
        4,
        "source of job \"a\": a \"stream\" source needs a topic, and only it",
        1));
}

TEST(repo_example_loads)
{
    unsetenv("NS_TELEGRAM_CHAT_ID");
    unsetenv("NS_REPORT_EMAIL_TO");
    unsetenv("NS_TEAMS_WEBHOOK_URL");
    char path[512];
    snprintf(path, sizeof(path), "%s/config/jobs.yaml", src_dir());
    ns_error_t err;
    ns_config_t *cfg = ns_config_load(path, known_module, &err);
    if (cfg == NULL)
        NSTEST_FAIL("%s", err.msg);
    ASSERT_EQ(cfg->n_jobs, 7);
    const ns_job_t *la = ns_config_job(cfg, "log-analyzer-backfill");
    ASSERT(la != NULL);
    ASSERT_EQ(la->source.kind, NS_SOURCE_WINDOWS);
    ASSERT(la->source.align_day);
    ASSERT_EQ(ns_source_window_s(&la->source), 900);
    ASSERT_STREQ(ns_config_teams_url(cfg, "ops"), "");
    const ns_job_t *st = ns_config_job(cfg, "structuring");
    ASSERT(st != NULL);
    ASSERT_STREQ(st->timezone, "Europe/Moscow");
    ASSERT_STREQ(st->source.order_column, "chat_id");
    ASSERT(st->source.reprocess_query != NULL);
    const ns_job_t *ing = ns_config_job(cfg, "telegram-ingest");
    ASSERT(ing != NULL);
    ASSERT_EQ(ing->source.kind, NS_SOURCE_STREAM);
    ASSERT_STREQ(ing->source.topic, "ns.ingest.telegram");
    ASSERT_STREQ(cfg->ingest.topic, "ns.ingest.telegram");
    /* The report's recipients: one string in the file, a list here. */
    const ns_job_t *rep = ns_config_job(cfg, "reports-generator");
    ASSERT(rep != NULL);
    ASSERT_EQ(rep->source.kind, NS_SOURCE_ONE);
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(rep->notify, "email"), "to");
    ASSERT(cJSON_IsArray(to));
    ASSERT_STREQ(cJSON_GetArrayItem(to, 0)->valuestring, "ops@example.com");
    ASSERT_STREQ(cfg->smtp.starttls, "required");
    const ns_job_t *sw = ns_config_job(cfg, "stopword-refresh");
    ASSERT(sw != NULL);
    ASSERT_EQ(sw->source.kind, NS_SOURCE_SHARDS);
    ASSERT_STREQ(ns_source_table(&sw->source), "documents");
    ASSERT_EQ(ns_source_shard_size(&sw->source), 100000);
    ASSERT_STREQ(sw->handler, "stopwords.count");
    ASSERT_STREQ(sw->finalizer, "stopwords.merge");
    const ns_job_t *job = ns_config_job(cfg, "batch-analyzer");
    ASSERT(job != NULL);
    ASSERT_STREQ(job->schedule, "0 2 * * *");
    ASSERT(job->cron != NULL);
    ASSERT_STREQ(job->timezone, "UTC");
    ASSERT_EQ(job->concurrency, NS_CONC_FORBID);
    ASSERT_EQ(job->starting_deadline_s, 600);
    ASSERT_EQ(job->suspend, false);
    ASSERT_EQ(job->source.kind, NS_SOURCE_SQL);
    ASSERT_STREQ(job->source.query,
                 "SELECT id, name, description, status, progress FROM "
                 "projects WHERE status = 'active' ORDER BY id");
    ASSERT_STREQ(job->source.key_column, "id");
    ASSERT_STREQ(job->handler, "analyzer.project");
    ASSERT_STREQ(job->finalizer, "analyzer.summary");
    ASSERT_EQ(job->retry.max_attempts, 3);
    ASSERT(job->retry.backoff_s == 2.0);
    ASSERT(job->retry.backoff_max_s == 60.0);
    ASSERT_EQ(job->max_parallelism, 4);
    ASSERT_JSON(job->notify, "{\"telegram\":{\"chat_id\":\"100\",\"mode\":"
                             "\"auto\",\"digest_min_items\":20}}");
    ASSERT_JSON(job->params, "{}");
    ns_config_destroy(cfg);
}

TEST(telegram_delivery_mode_is_checked)
{
    ns_config_t *cfg = load_ok(MIN_JOB "    notify: {telegram: {chat_id: "
                                       "\"1\", mode: digest, "
                                       "digest_min_items: 5}}\n");
    ns_config_destroy(cfg);
    ASSERT_ERROR(MIN_JOB "    notify: {telegram: {chat_id: \"1\", mode: "
                         "batch}}\n",
                 5,
                 "notify.telegram.mode must be auto, digest or "
                 "per_project");
    ASSERT_ERROR(MIN_JOB "    notify: {telegram: {digest_min_items: -1}}\n", 5,
                 "notify.telegram.digest_min_items must be a whole number "
                 ">= 0");
}

TEST(rate_limit_off_and_worker_outbox)
{
    ns_config_t *cfg = load_ok("rate_limits: {telegram.chat: \"off\"}\n"
                               "worker: {outbox: false}\n" MIN_JOB);
    ASSERT_EQ(cfg->n_rate_limits, 1);
    ASSERT_STREQ(cfg->rate_limits[0].value, "off");
    ASSERT(!cfg->worker_outbox);
    ns_config_destroy(cfg);
    cfg = load_ok(MIN_JOB);
    ASSERT(cfg->worker_outbox);
    ns_config_destroy(cfg);
    ASSERT_ERROR_PREFIX("rate_limits: {telegram: \"fast\"}\n" MIN_JOB, 1, "");
}

TEST(teams_webhooks_by_name)
{
    ns_config_t *cfg =
        load_ok("teams:\n  webhooks: {ops: \"https://example.org/webhookb2/"
                "x\", local: \"http://127.0.0.1:9/workflows/y\"}\n"
                "jobs:\n  - name: a\n    handler: h\n    source: {type: "
                "one}\n    notify: {teams: {webhook: ops}}\n");
    ASSERT_STREQ(ns_config_teams_url(cfg, "ops"),
                 "https://example.org/webhookb2/x");
    ASSERT(ns_config_teams_url(cfg, "nope") == NULL);
    ASSERT_EQ(cfg->teams.timeout_s, 30);
    ns_config_destroy(cfg);
    ASSERT_ERROR(
        "teams:\n  webhooks: {ops: \"http://example.org/x\"}\n" MIN_JOB, 2,
        "teams.webhooks.ops must be an https:// URL");
    ASSERT_ERROR("jobs:\n  - name: a\n    handler: h\n    source: {type: "
                 "one}\n    notify: {teams: {webhook: ops}}\n",
                 2,
                 "job a: notify.teams.webhook \"ops\" is not in "
                 "teams.webhooks");
}

NSTEST_MAIN
