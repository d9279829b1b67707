#include "ns/config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ns/log.h"
#include "ns/mailaddr.h"
#include "ns/ratelimit.h"
#include "yamlutil.h"

/* A config file is small; anything larger is a mistake or an attack. */
#define CONFIG_MAX_BYTES (4 * 1024 * 1024)
#define JOB_NAME_MAX 100
/* notify/params may build at most this many values (alias bombs). */
#define CONFIG_JSON_BUDGET 100000

typedef struct loader {
    ns_yaml_t y;
    ns_config_t *cfg;
    ns_handler_known_fn known;
    bool have_jobs;
} loader_t;

/* Keys of one mapping are described by a table of fields (redis' command
 * table idea): the type says how to read the value and where it goes. */
typedef enum field_type {
    F_STR,
    F_INT,
    F_SIZE,
    F_DBL,
    F_BOOL,
    F_FN,      /* fn reads it */
    F_SECTION, /* a nested mapping read with its own table, same base */
    F_SKIP,    /* read before the table walk */
} field_type_t;

typedef struct field field_t;
typedef ns_err_t (*field_fn)(loader_t *ld, const yaml_node_t *value,
                             void *base);

struct field {
    const char *key;
    field_type_t type;
    size_t offset;
    long long min, max;
    field_fn fn;
    const field_t *section;
};

/* clang-format off */
#define F_STR_(k, s, m) {.key = k, .type = F_STR, .offset = offsetof(s, m)}
#define F_INT_(k, s, m, lo, hi)                                                \
    {.key = k, .type = F_INT, .offset = offsetof(s, m), .min = lo, .max = hi}
#define F_SIZE_(k, s, m, lo, hi)                                               \
    {.key = k, .type = F_SIZE, .offset = offsetof(s, m), .min = lo, .max = hi}
#define F_DBL_(k, s, m, lo, hi)                                                \
    {.key = k, .type = F_DBL, .offset = offsetof(s, m), .min = lo, .max = hi}
#define F_BOOL_(k, s, m) {.key = k, .type = F_BOOL, .offset = offsetof(s, m)}
#define F_FN_(k, f) {.key = k, .type = F_FN, .fn = f}
#define F_SECTION_(k, t) {.key = k, .type = F_SECTION, .section = t}
#define F_SKIP_(k) {.key = k, .type = F_SKIP}
#define F_END {.key = NULL}
/* clang-format on */

static ns_err_t parse_fields(loader_t *ld, const yaml_node_t *map,
                             const char *noun, const field_t *fields,
                             void *base);

/* ---- jobs ---- */

static ns_err_t parse_name(loader_t *ld, const yaml_node_t *value,
                           ns_job_t *job)
{
    char *name;
    ns_err_t rc = ns_yaml_string(&ld->y, value, "name", &name);
    if (rc != NS_OK)
        return rc;
    size_t len = strlen(name);
    bool ok = len > 0 &&
              strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]) != NULL;
    ok = ok && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") == len;
    if (len > JOB_NAME_MAX)
        rc = ns_yaml_fail(&ld->y, value,
                          "job name \"%.20s...\" is longer than %d characters",
                          name, JOB_NAME_MAX);
    else if (!ok)
        rc = ns_yaml_fail(&ld->y, value,
                          "bad job name \"%s\": use a-z, 0-9, '.', '_' and "
                          "'-', starting with a letter or digit",
                          name);
    if (rc != NS_OK) {
        free(name);
        return rc;
    }
    job->name = name;
    return NS_OK;
}

static ns_err_t parse_schedule(loader_t *ld, const yaml_node_t *value,
                               void *base)
{
    ns_job_t *job = base;
    char *schedule;
    ns_err_t rc = ns_yaml_string(&ld->y, value, "schedule", &schedule);
    if (rc != NS_OK)
        return rc;
    ns_error_t why;
    ns_error_clear(&why);
    ns_cron_t *cron = ns_cron_parse(schedule, &why);
    if (cron == NULL) {
        rc = ns_yaml_fail(&ld->y, value, "schedule: %s", why.msg);
        free(schedule);
        return rc;
    }
    job->schedule = schedule;
    job->cron = cron;
    return NS_OK;
}

static ns_err_t parse_timezone(loader_t *ld, const yaml_node_t *value,
                               void *base)
{
    ns_job_t *job = base;
    char *tz;
    ns_err_t rc = ns_yaml_string(&ld->y, value, "timezone", &tz);
    if (rc != NS_OK)
        return rc;
    if (!ns_tz_valid(tz)) {
        rc = ns_yaml_fail(&ld->y, value, "unknown time zone \"%s\"", tz);
        free(tz);
        return rc;
    }
    free(job->timezone);
    job->timezone = tz;
    return NS_OK;
}

static ns_err_t parse_concurrency(loader_t *ld, const yaml_node_t *value,
                                  void *base)
{
    static const char *const names[] = {
        [NS_CONC_FORBID] = "Forbid",
        [NS_CONC_ALLOW] = "Allow",
        [NS_CONC_REPLACE] = "Replace",
    };
    ns_job_t *job = base;
    char *policy;
    ns_err_t rc = ns_yaml_string(&ld->y, value, "concurrency_policy", &policy);
    if (rc != NS_OK)
        return rc;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(policy, names[i]) == 0) {
            job->concurrency = (ns_concurrency_t)i;
            free(policy);
            return NS_OK;
        }
    }
    rc = ns_yaml_fail(&ld->y, value,
                      "unknown concurrency_policy \"%s\" (Forbid, Allow or "
                      "Replace)",
                      policy);
    free(policy);
    return rc;
}

static ns_err_t parse_module(loader_t *ld, const yaml_node_t *value, char **dst,
                             int is_finalizer)
{
    const char *what = is_finalizer ? "finalizer" : "handler";
    char *name;
    ns_err_t rc = ns_yaml_string(&ld->y, value, what, &name);
    if (rc != NS_OK)
        return rc;
    if (ld->known != NULL && !ld->known(name, is_finalizer)) {
        rc = ns_yaml_fail(&ld->y, value, "unknown %s \"%s\"", what, name);
        free(name);
        return rc;
    }
    *dst = name;
    return NS_OK;
}

static ns_err_t parse_handler(loader_t *ld, const yaml_node_t *value,
                              void *base)
{
    return parse_module(ld, value, &((ns_job_t *)base)->handler, 0);
}

static ns_err_t parse_finalizer(loader_t *ld, const yaml_node_t *value,
                                void *base)
{
    return parse_module(ld, value, &((ns_job_t *)base)->finalizer, 1);
}

static ns_err_t parse_json(loader_t *ld, const yaml_node_t *value,
                           const char *what, cJSON **dst)
{
    ns_err_t rc = ns_yaml_check_map(&ld->y, value, what);
    if (rc != NS_OK)
        return rc;
    cJSON *json = ns_yaml_to_json(&ld->y, value, what);
    if (json == NULL)
        return ld->y.err != NULL ? ld->y.err->code : NS_ERR_INVALID;
    cJSON_Delete(*dst);
    *dst = json;
    return NS_OK;
}

/* notify.email: {to: [addresses] | "a@x, b@y"}: a string becomes the list
 * of its comma-separated addresses, and every address is checked as the
 * mailer will (no header injection through the configuration). */
static ns_err_t check_email(loader_t *ld, const yaml_node_t *value,
                            cJSON *email)
{
    cJSON *to = cJSON_GetObjectItemCaseSensitive(email, "to");
    if (!cJSON_IsObject(email) || !(cJSON_IsString(to) || cJSON_IsArray(to)))
        return ns_yaml_fail(&ld->y, value,
                            "notify.email needs \"to\": an address or a "
                            "list of them");
    if (cJSON_IsString(to)) {
        cJSON *list = cJSON_CreateArray();
        char *copy = strdup(to->valuestring), *save = NULL;
        if (list == NULL || copy == NULL) {
            cJSON_Delete(list);
            free(copy);
            return ns_error_set(ld->y.err, NS_ERR_NOMEM, "out of memory");
        }
        for (char *a = strtok_r(copy, ",", &save); a != NULL;
             a = strtok_r(NULL, ",", &save)) {
            while (*a == ' ' || *a == '\t')
                a++;
            size_t n = strlen(a);
            while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
                a[--n] = '\0';
            if (n > 0)
                cJSON_AddItemToArray(list, cJSON_CreateString(a));
        }
        free(copy);
        cJSON_ReplaceItemInObjectCaseSensitive(email, "to", list);
        to = list;
    }
    if (cJSON_GetArraySize(to) == 0)
        return ns_yaml_fail(&ld->y, value, "notify.email.to is empty");
    const cJSON *one;
    cJSON_ArrayForEach(one, to)
    {
        ns_error_t why;
        ns_error_clear(&why);
        if (!cJSON_IsString(one))
            return ns_yaml_fail(&ld->y, value,
                                "notify.email.to: addresses are strings");
        if (ns_mail_check_address(one->valuestring, &why) != NS_OK)
            return ns_yaml_fail(&ld->y, value, "notify.email.to: %s", why.msg);
    }
    return NS_OK;
}

/* notify.telegram: {chat_id, mode: auto | digest | per_project,
 * digest_min_items: N (auto packs runs of more items than that)}. */
static ns_err_t check_telegram(loader_t *ld, const yaml_node_t *value,
                               const cJSON *tg)
{
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(tg, "mode");
    if (mode != NULL &&
        (!cJSON_IsString(mode) || (strcmp(mode->valuestring, "auto") != 0 &&
                                   strcmp(mode->valuestring, "digest") != 0 &&
                                   strcmp(mode->valuestring, "per_project"))))
        return ns_yaml_fail(&ld->y, value,
                            "notify.telegram.mode must be auto, digest or "
                            "per_project");
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(tg, "digest_min_items");
    if (min != NULL && (!cJSON_IsNumber(min) || min->valuedouble < 0 ||
                        min->valuedouble != (double)(int)min->valuedouble))
        return ns_yaml_fail(&ld->y, value,
                            "notify.telegram.digest_min_items must be a "
                            "whole number >= 0");
    return NS_OK;
}

static ns_err_t parse_notify(loader_t *ld, const yaml_node_t *value, void *base)
{
    ns_job_t *job = base;
    ns_err_t rc = parse_json(ld, value, "notify", &job->notify);
    cJSON *email = cJSON_GetObjectItemCaseSensitive(job->notify, "email");
    if (rc == NS_OK && email != NULL)
        rc = check_email(ld, value, email);
    cJSON *tg = cJSON_GetObjectItemCaseSensitive(job->notify, "telegram");
    if (rc == NS_OK && tg != NULL)
        rc = check_telegram(ld, value, tg);
    return rc;
}

static ns_err_t parse_params(loader_t *ld, const yaml_node_t *value, void *base)
{
    return parse_json(ld, value, "params", &((ns_job_t *)base)->params);
}

static ns_err_t parse_source_type(loader_t *ld, const yaml_node_t *value,
                                  void *base)
{
    ns_job_t *job = base;
    char *type;
    ns_err_t rc = ns_yaml_string(&ld->y, value, "type", &type);
    if (rc != NS_OK)
        return rc;
    if (strcmp(type, "sql") == 0)
        job->source.kind = NS_SOURCE_SQL;
    else if (strcmp(type, "one") == 0)
        job->source.kind = NS_SOURCE_ONE;
    else if (strcmp(type, "shards") == 0)
        job->source.kind = NS_SOURCE_SHARDS;
    else if (strcmp(type, "stream") == 0)
        job->source.kind = NS_SOURCE_STREAM;
    else if (strcmp(type, "windows") == 0)
        job->source.kind = NS_SOURCE_WINDOWS;
    else
        rc = ns_yaml_fail(&ld->y, value,
                          "unknown source type \"%s\" (sql, shards, one, "
                          "windows or stream)",
                          type);
    free(type);
    return rc;
}

/* windows: align: slot (default: the windows ending at the slot) | day
 * (every window of the day before the slot's day). */
static ns_err_t parse_align(loader_t *ld, const yaml_node_t *value, void *base)
{
    ns_job_t *job = base;
    char *align;
    ns_err_t rc = ns_yaml_string(&ld->y, value, "align", &align);
    if (rc != NS_OK)
        return rc;
    if (strcmp(align, "day") == 0)
        job->source.align_day = true;
    else if (strcmp(align, "slot") != 0)
        rc =
            ns_yaml_fail(&ld->y, value,
                         "source.align must be slot or day, not \"%s\"", align);
    free(align);
    return rc;
}

static const field_t source_fields[] = {
    F_FN_("type", parse_source_type),
    F_STR_("query", ns_job_t, source.query),
    F_STR_("key", ns_job_t, source.key_column),
    F_STR_("order_key", ns_job_t, source.order_column),
    F_STR_("reprocess_query", ns_job_t, source.reprocess_query),
    F_STR_("table", ns_job_t, source.table),
    F_INT_("shard_size", ns_job_t, source.shard_size, 1, INT_MAX),
    F_INT_("watermark_overlap_seconds", ns_job_t, source.overlap_s, 0,
           86400 * 7),
    F_STR_("topic", ns_job_t, source.topic),
    F_INT_("window_seconds", ns_job_t, source.window_s, 60, 86400),
    F_INT_("windows", ns_job_t, source.n_windows, 1, 10000),
    F_FN_("align", parse_align),
    F_STR_("services_query", ns_job_t, source.services_query),
    F_END,
};

static const field_t retry_fields[] = {
    F_INT_("max_attempts", ns_job_t, retry.max_attempts, 1, 1000),
    F_DBL_("backoff_seconds", ns_job_t, retry.backoff_s, 0, 86400),
    F_DBL_("backoff_max_seconds", ns_job_t, retry.backoff_max_s, 0, 86400),
    F_END,
};

static const field_t alert_fields[] = {
    F_INT_("stale_minutes", ns_job_t, alert_stale_min, 1, 1000000),
    F_INT_("failed_runs", ns_job_t, alert_failed_runs, 1, 10000),
    F_END,
};

static const field_t job_fields[] = {
    F_SKIP_("name"),
    F_FN_("schedule", parse_schedule),
    F_FN_("timezone", parse_timezone),
    F_FN_("concurrency_policy", parse_concurrency),
    F_INT_("starting_deadline_seconds", ns_job_t, starting_deadline_s, 0,
           INT_MAX),
    F_BOOL_("suspend", ns_job_t, suspend),
    F_SECTION_("source", source_fields),
    F_FN_("handler", parse_handler),
    F_FN_("finalizer", parse_finalizer),
    F_SECTION_("retry", retry_fields),
    F_INT_("max_parallelism", ns_job_t, max_parallelism, 1, 1024),
    F_INT_("max_in_flight", ns_job_t, max_in_flight, 1, 65536),
    F_FN_("notify", parse_notify),
    F_SECTION_("alerts", alert_fields),
    F_FN_("params", parse_params),
    F_END,
};

static ns_err_t job_defaults(loader_t *ld, ns_job_t *job)
{
    job->timezone = strdup("UTC");
    job->concurrency = NS_CONC_FORBID;
    job->starting_deadline_s = 300;
    job->source.kind = NS_SOURCE_ONE;
    job->source.overlap_s = -1;
    job->retry = (ns_retry_t){3, 1.0, 60.0};
    job->max_parallelism = 4;
    job->notify = cJSON_CreateObject();
    job->params = cJSON_CreateObject();
    if (job->timezone == NULL || job->notify == NULL || job->params == NULL)
        return ns_error_set(ld->y.err, NS_ERR_NOMEM, "%s: out of memory",
                            ld->y.path);
    return NS_OK;
}

static bool given(const ns_yaml_t *y, const yaml_node_t *map, const char *key)
{
    const yaml_node_t *value = ns_yaml_get(y, map, key);
    return value != NULL && !ns_yaml_is_null(value);
}

/* What the table cannot say: required keys and rules across keys. */
static ns_err_t check_job(loader_t *ld, const yaml_node_t *map,
                          const ns_job_t *job, const char *noun)
{
    ns_yaml_t *y = &ld->y;
    if (job->name == NULL)
        return ns_yaml_fail(y, map, "%s has no name", noun);
    if (job->handler == NULL)
        return ns_yaml_fail(y, map, "%s has no handler", noun);
    if (!given(y, map, "source"))
        return ns_yaml_fail(y, map, "%s has no source", noun);
    const yaml_node_t *source = ns_yaml_get(y, map, "source");
    const ns_source_t *src = &job->source;
    if (!given(y, source, "type"))
        return ns_yaml_fail(y, source, "source of %s has no type", noun);
    if (src->kind == NS_SOURCE_SQL && src->query == NULL)
        return ns_yaml_fail(y, source, "sql source of %s has no query", noun);
    if (src->kind == NS_SOURCE_SQL && src->key_column == NULL)
        return ns_yaml_fail(y, source, "sql source of %s has no key", noun);
    if (src->kind != NS_SOURCE_SQL &&
        (src->order_column != NULL || src->reprocess_query != NULL))
        return ns_yaml_fail(y, source,
                            "source of %s: order_key and reprocess_query are "
                            "for \"sql\"",
                            noun);
    if (src->kind == NS_SOURCE_SHARDS &&
        (src->query != NULL || src->key_column != NULL))
        return ns_yaml_fail(y, source,
                            "source of %s: \"shards\" takes table and "
                            "shard_size, not query or key",
                            noun);
    if (src->kind != NS_SOURCE_SHARDS &&
        (src->table != NULL || src->shard_size != 0 || src->overlap_s >= 0))
        return ns_yaml_fail(y, source,
                            "source of %s: table, shard_size and "
                            "watermark_overlap_seconds are for "
                            "\"shards\"",
                            noun);
    if (src->kind == NS_SOURCE_ONE &&
        (src->query != NULL || src->key_column != NULL))
        return ns_yaml_fail(
            y, source, "source of %s: \"one\" takes no query or key", noun);
    if ((src->kind == NS_SOURCE_STREAM) != (src->topic != NULL))
        return ns_yaml_fail(y, source,
                            "source of %s: a \"stream\" source needs a "
                            "topic, and only it takes one",
                            noun);
    if (src->kind == NS_SOURCE_STREAM &&
        (src->query != NULL || src->key_column != NULL ||
         job->schedule != NULL || job->finalizer != NULL))
        return ns_yaml_fail(y, source,
                            "source of %s: a \"stream\" job has no query, "
                            "key, schedule or finalizer (its items come from "
                            "the topic)",
                            noun);
    bool windows = src->kind == NS_SOURCE_WINDOWS;
    if (!windows && (src->window_s != 0 || src->n_windows != 0 ||
                     src->align_day || src->services_query != NULL))
        return ns_yaml_fail(y, source,
                            "source of %s: window_seconds, windows, align and "
                            "services_query are for \"windows\"",
                            noun);
    if (windows && (src->query != NULL || src->key_column != NULL))
        return ns_yaml_fail(y, source,
                            "source of %s: \"windows\" takes window_seconds, "
                            "windows, align and services_query, not query or "
                            "key",
                            noun);
    if (windows && src->align_day && 86400 % ns_source_window_s(src) != 0)
        return ns_yaml_fail(y, source,
                            "source of %s: with align: day, window_seconds "
                            "must divide a day",
                            noun);
    if (src->topic != NULL && strncmp(src->topic, "ns.items.", 9) == 0)
        return ns_yaml_fail(y, source,
                            "source of %s: topic %s is reserved for job "
                            "items",
                            noun, src->topic);
    if (job->retry.backoff_max_s < job->retry.backoff_s)
        return ns_yaml_fail(y, ns_yaml_get(y, map, "retry"),
                            "retry of %s: backoff_max_seconds (%g) is less "
                            "than backoff_seconds (%g)",
                            noun, job->retry.backoff_max_s,
                            job->retry.backoff_s);
    return NS_OK;
}

static ns_err_t parse_job(loader_t *ld, const yaml_node_t *map, size_t index)
{
    ns_job_t *job = &ld->cfg->jobs[index];
    ns_err_t rc = job_defaults(ld, job);
    if (rc != NS_OK)
        return rc;
    job->line = ns_yaml_line(map);
    if (map->type != YAML_MAPPING_NODE)
        return ns_yaml_fail(&ld->y, map, "job #%zu: expected a mapping, got %s",
                            index + 1, ns_yaml_kind(map));
    /* The name first, so every later message can say which job. */
    const yaml_node_t *name = ns_yaml_get(&ld->y, map, "name");
    if (name != NULL && !ns_yaml_is_null(name))
        rc = parse_name(ld, name, job);
    if (rc != NS_OK)
        return rc;
    char noun[160];
    if (job->name != NULL)
        snprintf(noun, sizeof(noun), "job \"%s\"", job->name);
    else
        snprintf(noun, sizeof(noun), "job #%zu", index + 1);
    rc = parse_fields(ld, map, noun, job_fields, job);
    if (rc != NS_OK)
        return rc;
    return check_job(ld, map, job, noun);
}

static ns_err_t parse_jobs(loader_t *ld, const yaml_node_t *value, void *base)
{
    ns_config_t *cfg = base;
    if (value->type != YAML_SEQUENCE_NODE)
        return ns_yaml_fail(&ld->y, value, "jobs: expected a sequence, got %s",
                            ns_yaml_kind(value));
    const yaml_node_item_t *items = value->data.sequence.items.start;
    size_t n = (size_t)(value->data.sequence.items.top - items);
    cfg->jobs = calloc(n > 0 ? n : 1, sizeof(ns_job_t));
    if (cfg->jobs == NULL)
        return ns_error_set(ld->y.err, NS_ERR_NOMEM, "%s: out of memory",
                            ld->y.path);
    ld->have_jobs = true;
    for (size_t i = 0; i < n; i++) {
        /* Counted before parsing, so a failure frees the partial job. */
        cfg->n_jobs = i + 1;
        const yaml_node_t *map = ns_yaml_node(&ld->y, items[i]);
        ns_err_t rc = parse_job(ld, map, i);
        if (rc != NS_OK)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->jobs[j].name, cfg->jobs[i].name) == 0)
                return ns_yaml_fail(
                    &ld->y, ns_yaml_get(&ld->y, map, "name"),
                    "duplicate job name \"%s\" (first at line %d)",
                    cfg->jobs[i].name, cfg->jobs[j].line);
        }
    }
    return NS_OK;
}

/* ---- top level ---- */

static ns_err_t parse_version(loader_t *ld, const yaml_node_t *value,
                              void *base)
{
    long long version;
    ns_err_t rc = ns_yaml_int(&ld->y, value, "version", 0, INT_MAX, &version);
    if (rc == NS_OK && version != 1)
        rc = ns_yaml_fail(&ld->y, value,
                          "unsupported version %lld (this build reads 1)",
                          version);
    return rc;
}

/* A free-form mapping of scalars into (key, value, line) triples. */
static ns_err_t parse_kv_map(loader_t *ld, const yaml_node_t *value,
                             const char *section, ns_kv_t **out, size_t *n_out)
{
    ns_yaml_t *y = &ld->y;
    ns_err_t rc = ns_yaml_check_map(y, value, section);
    if (rc != NS_OK)
        return rc;
    const yaml_node_pair_t *pairs = value->data.mapping.pairs.start;
    size_t n = (size_t)(value->data.mapping.pairs.top - pairs);
    *out = calloc(n > 0 ? n : 1, sizeof(ns_kv_t));
    if (*out == NULL)
        return ns_error_set(y->err, NS_ERR_NOMEM, "%s: out of memory", y->path);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *key = ns_yaml_node(y, pairs[i].key);
        const yaml_node_t *val = ns_yaml_node(y, pairs[i].value);
        char what[160];
        snprintf(what, sizeof(what), "%s.%s", section, ns_yaml_raw(key));
        if (ns_yaml_is_null(val))
            return ns_yaml_fail(y, val, "%s: no value", what);
        ns_kv_t *kv = &(*out)[*n_out];
        rc = ns_yaml_string(y, val, what, &kv->value);
        if (rc != NS_OK)
            return rc;
        (*n_out)++;
        kv->line = ns_yaml_line(key);
        kv->key = strdup(ns_yaml_raw(key));
        if (kv->key == NULL)
            return ns_error_set(y->err, NS_ERR_NOMEM, "%s: out of memory",
                                y->path);
    }
    return NS_OK;
}

static ns_err_t parse_kafka(loader_t *ld, const yaml_node_t *value, void *base)
{
    ns_config_t *cfg = base;
    return parse_kv_map(ld, value, "kafka", &cfg->kafka, &cfg->n_kafka);
}

/* rate_limits: {telegram: "30/s", telegram.chat: "1/s", llm: "600/min"};
 * "off" turns a built-in default (the outbox's pacing) off. */
static ns_err_t parse_rate_limits(loader_t *ld, const yaml_node_t *value,
                                  void *base)
{
    ns_config_t *cfg = base;
    ns_err_t rc = parse_kv_map(ld, value, "rate_limits", &cfg->rate_limits,
                               &cfg->n_rate_limits);
    for (size_t i = 0; rc == NS_OK && i < cfg->n_rate_limits; i++) {
        double rate, burst;
        ns_error_t why;
        ns_error_clear(&why);
        if (strcmp(cfg->rate_limits[i].value, "off") != 0 &&
            ns_ratelimit_parse(cfg->rate_limits[i].value, &rate, &burst,
                               &why) != NS_OK)
            rc = ns_error_set(ld->y.err, NS_ERR_INVALID, "%s:%d: %s",
                              ld->y.path, cfg->rate_limits[i].line, why.msg);
    }
    return rc;
}

static const field_t connection_fields[] = {
    F_STR_("postgres", ns_config_t, pg_dsn),
    F_STR_("redis", ns_config_t, redis_url),
    F_STR_("kafka", ns_config_t, kafka_brokers),
    F_END,
};

static const field_t worker_fields[] = {
    F_INT_("max_in_flight", ns_config_t, worker_max_in_flight, 1, 65536),
    F_INT_("metrics_port", ns_config_t, worker_metrics_port, -1, 65535),
    F_SIZE_("max_payload_bytes", ns_config_t, max_payload_bytes, 1, INT_MAX),
    F_INT_("shutdown_grace_seconds", ns_config_t, worker_shutdown_grace_s, 1,
           3600),
    F_INT_("pg_pool_size", ns_config_t, worker_pg_pool_size, 1, 1000),
    F_BOOL_("outbox", ns_config_t, worker_outbox),
    F_STR_("retry_tiers", ns_config_t, retry_tiers),
    F_END,
};

static const field_t producer_fields[] = {
    F_INT_("metrics_port", ns_config_t, producer_metrics_port, -1, 65535),
    F_INT_("tick_ms", ns_config_t, producer_tick_ms, 1, 3600000),
    F_END,
};

static const field_t llm_fields[] = {
    F_STR_("base_url", ns_config_t, llm.base_url),
    F_STR_("model", ns_config_t, llm.model),
    F_STR_("api_key", ns_config_t, llm.api_key),
    F_INT_("max_tokens", ns_config_t, llm.max_tokens, 1, INT_MAX),
    F_INT_("timeout_seconds", ns_config_t, llm.timeout_s, 1, 86400),
    F_END,
};

/* teams: {webhooks: {name: URL}}: https only, or http on loopback (a
 * local relay, the tests' fake); TLS verification is never off. */
static ns_err_t parse_teams_webhooks(loader_t *ld, const yaml_node_t *value,
                                     void *base)
{
    ns_config_t *cfg = base;
    ns_err_t rc = parse_kv_map(ld, value, "teams.webhooks",
                               &cfg->teams.webhooks, &cfg->teams.n_webhooks);
    for (size_t i = 0; rc == NS_OK && i < cfg->teams.n_webhooks; i++) {
        const char *url = cfg->teams.webhooks[i].value;
        bool https = strncmp(url, "https://", 8) == 0;
        bool loopback = strncmp(url, "http://127.0.0.1", 16) == 0 ||
                        strncmp(url, "http://localhost", 16) == 0 ||
                        strncmp(url, "http://[::1]", 12) == 0;
        if (url[0] != '\0' && !https && !loopback)
            rc = ns_error_set(ld->y.err, NS_ERR_INVALID,
                              "%s:%d: teams.webhooks.%s must be an https:// "
                              "URL",
                              ld->y.path, cfg->teams.webhooks[i].line,
                              cfg->teams.webhooks[i].key);
    }
    return rc;
}

static const field_t teams_fields[] = {
    F_FN_("webhooks", parse_teams_webhooks),
    F_INT_("timeout_seconds", ns_config_t, teams.timeout_s, 1, 600),
    F_END,
};

const char *ns_config_teams_url(const ns_config_t *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->teams.n_webhooks; i++)
        if (strcmp(cfg->teams.webhooks[i].key, name) == 0)
            return cfg->teams.webhooks[i].value;
    return NULL;
}

/* notify.teams.webhook must name a configured webhook (checked once the
 * whole file is read: teams: may come after jobs:). */
static ns_err_t check_teams_targets(loader_t *ld)
{
    const ns_config_t *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        const cJSON *teams =
            cJSON_GetObjectItemCaseSensitive(job->notify, "teams");
        if (teams == NULL)
            continue;
        const cJSON *hook = cJSON_GetObjectItemCaseSensitive(teams, "webhook");
        if (!cJSON_IsString(hook))
            return ns_error_set(ld->y.err, NS_ERR_INVALID,
                                "%s:%d: job %s: notify.teams needs "
                                "\"webhook\": the name of one of "
                                "teams.webhooks",
                                ld->y.path, job->line, job->name);
        if (ns_config_teams_url(cfg, hook->valuestring) == NULL)
            return ns_error_set(ld->y.err, NS_ERR_INVALID,
                                "%s:%d: job %s: notify.teams.webhook \"%s\" "
                                "is not in teams.webhooks",
                                ld->y.path, job->line, job->name,
                                hook->valuestring);
    }
    return NS_OK;
}

static const field_t confluence_fields[] = {
    F_STR_("base_url", ns_config_t, confluence.base_url),
    F_STR_("user", ns_config_t, confluence.user),
    F_STR_("token", ns_config_t, confluence.token),
    F_STR_("auth", ns_config_t, confluence.auth),
    F_INT_("timeout_seconds", ns_config_t, confluence.timeout_s, 1, 3600),
    F_END,
};

static const field_t telegram_fields[] = {
    F_STR_("api_url", ns_config_t, telegram.api_url),
    F_STR_("bot_token", ns_config_t, telegram.bot_token),
    F_INT_("timeout_seconds", ns_config_t, telegram.timeout_s, 1, 86400),
    F_END,
};

static const field_t smtp_fields[] = {
    F_STR_("url", ns_config_t, smtp.url),
    F_STR_("user", ns_config_t, smtp.user),
    F_STR_("password", ns_config_t, smtp.password),
    F_STR_("from", ns_config_t, smtp.from),
    F_STR_("starttls", ns_config_t, smtp.starttls),
    F_INT_("timeout_seconds", ns_config_t, smtp.timeout_s, 1, 86400),
    F_END,
};

static const field_t ingest_fields[] = {
    F_INT_("port", ns_config_t, ingest.port, 0, 65535),
    F_STR_("bind", ns_config_t, ingest.bind),
    F_STR_("secret_token", ns_config_t, ingest.secret_token),
    F_STR_("topic", ns_config_t, ingest.topic),
    F_INT_("partitions", ns_config_t, ingest.partitions, 1, 1024),
    F_SIZE_("max_body_bytes", ns_config_t, ingest.max_body, 1024,
            64 * 1024 * 1024),
    F_INT_("timeout_ms", ns_config_t, ingest.timeout_ms, 100, 600000),
    F_END,
};

static const field_t ui_fields[] = {
    F_INT_("port", ns_config_t, ui.port, 0, 65535),
    F_STR_("bind", ns_config_t, ui.bind),
    F_STR_("token", ns_config_t, ui.token),
    F_INT_("refresh_ms", ns_config_t, ui.refresh_ms, 250, 600000),
    F_END,
};

static const field_t top_fields[] = {
    F_FN_("version", parse_version),
    F_SECTION_("connections", connection_fields),
    F_FN_("kafka", parse_kafka),
    F_FN_("rate_limits", parse_rate_limits),
    F_SECTION_("worker", worker_fields),
    F_SECTION_("producer", producer_fields),
    F_SECTION_("llm", llm_fields),
    F_SECTION_("telegram", telegram_fields),
    F_SECTION_("smtp", smtp_fields),
    F_SECTION_("teams", teams_fields),
    F_SECTION_("confluence", confluence_fields),
    F_SECTION_("ingest", ingest_fields),
    F_SECTION_("ui", ui_fields),
    F_FN_("jobs", parse_jobs),
    F_END,
};

/* ---- the table walk ---- */

static ns_err_t parse_field(loader_t *ld, const field_t *f,
                            const yaml_node_t *value, const char *noun,
                            void *base)
{
    ns_yaml_t *y = &ld->y;
    void *dst = (char *)base + f->offset;
    ns_err_t rc = NS_OK;
    long long n = 0;
    double d = 0;
    bool b = false;
    char *s = NULL;
    char sub[256];
    switch (f->type) {
    case F_SKIP: return NS_OK;
    case F_FN: return f->fn(ld, value, base);
    case F_SECTION:
        if (noun == NULL)
            snprintf(sub, sizeof(sub), "%s", f->key);
        else
            snprintf(sub, sizeof(sub), "%s of %s", f->key, noun);
        return parse_fields(ld, value, sub, f->section, base);
    case F_STR:
        rc = ns_yaml_string(y, value, f->key, &s);
        if (rc == NS_OK) {
            free(*(char **)dst);
            *(char **)dst = s;
        }
        return rc;
    case F_INT:
    case F_SIZE:
        rc = ns_yaml_int(y, value, f->key, f->min, f->max, &n);
        if (rc == NS_OK && f->type == F_INT)
            *(int *)dst = (int)n;
        else if (rc == NS_OK)
            *(size_t *)dst = (size_t)n;
        return rc;
    case F_DBL:
        rc = ns_yaml_double(y, value, f->key, (double)f->min, (double)f->max,
                            &d);
        if (rc == NS_OK)
            *(double *)dst = d;
        return rc;
    case F_BOOL:
        rc = ns_yaml_bool(y, value, f->key, &b);
        if (rc == NS_OK)
            *(bool *)dst = b;
        return rc;
    }
    return NS_OK;
}

/* noun names the mapping in messages; NULL for the top level. */
static ns_err_t parse_fields(loader_t *ld, const yaml_node_t *map,
                             const char *noun, const field_t *fields,
                             void *base)
{
    ns_yaml_t *y = &ld->y;
    ns_err_t rc = ns_yaml_check_map(y, map, noun ? noun : "top level");
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         rc == NS_OK && p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = ns_yaml_node(y, p->key);
        const yaml_node_t *value = ns_yaml_node(y, p->value);
        const field_t *f = fields;
        while (f->key != NULL && strcmp(f->key, ns_yaml_raw(key)) != 0)
            f++;
        if (f->key == NULL && noun == NULL)
            rc = ns_yaml_fail(y, key, "unknown top-level key \"%s\"",
                              ns_yaml_raw(key));
        else if (f->key == NULL)
            rc = ns_yaml_fail(y, key, "unknown key \"%s\" in %s",
                              ns_yaml_raw(key), noun);
        else if (!ns_yaml_is_null(value))
            rc = parse_field(ld, f, value, noun, base);
    }
    return rc;
}

/* ---- loading ---- */

static bool set_default(char **dst, const char *value)
{
    if (*dst == NULL)
        *dst = strdup(value);
    return *dst != NULL;
}

static bool replace_str(char **dst, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return false;
    free(*dst);
    *dst = copy;
    return true;
}

/* Settings left out of the file come from the environment, as if written
 * "${VAR:-}": a program that needs one checks that it is not empty. */
static bool env_default(char **dst, const char *var)
{
    const char *value = getenv(var);
    return set_default(dst, value != NULL ? value : "");
}

static ns_config_t *config_new(const char *path)
{
    ns_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return NULL;
    cfg->worker_max_in_flight = 8;
    cfg->worker_metrics_port = 9464;
    cfg->producer_metrics_port = 9463;
    cfg->producer_tick_ms = 1000;
    cfg->max_payload_bytes = 1024 * 1024;
    cfg->worker_shutdown_grace_s = 25;
    cfg->worker_pg_pool_size = 16;
    cfg->worker_outbox = true;
    cfg->llm.max_tokens = 500;
    cfg->llm.timeout_s = 60;
    cfg->telegram.timeout_s = 30;
    cfg->smtp.timeout_s = 60;
    cfg->teams.timeout_s = 30;
    cfg->confluence.timeout_s = 60;
    cfg->ingest.port = 8088;
    cfg->ingest.partitions = 8;
    cfg->ingest.max_body = 1024 * 1024;
    cfg->ingest.timeout_ms = 10000;
    cfg->ui.port = 8089;
    cfg->ui.refresh_ms = 2000;
    bool ok = set_default(&cfg->path, path) &&
              set_default(&cfg->llm.base_url, "https://api.perplexity.ai") &&
              set_default(&cfg->llm.model, "sonar-reasoning-pro") &&
              set_default(&cfg->retry_tiers, "5s,30s,5m,1h") &&
              set_default(&cfg->telegram.api_url, "https://api.telegram.org");
    if (!ok) {
        ns_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

static ns_err_t parse_root(loader_t *ld)
{
    ns_yaml_t *y = &ld->y;
    ns_config_t *cfg = ld->cfg;
    const yaml_node_t *root = yaml_document_get_root_node(y->doc);
    if (root == NULL)
        return ns_error_set(y->err, NS_ERR_INVALID,
                            "%s: empty file (\"jobs\" is required)", y->path);
    ns_err_t rc = parse_fields(ld, root, NULL, top_fields, cfg);
    if (rc != NS_OK)
        return rc;
    if (!ld->have_jobs)
        return ns_yaml_fail(y, root, "missing required key \"jobs\"");
    bool ok =
        env_default(&cfg->pg_dsn, "NS_PG_DSN") &&
        env_default(&cfg->redis_url, "NS_REDIS_URL") &&
        env_default(&cfg->kafka_brokers, "NS_KAFKA_BROKERS") &&
        env_default(&cfg->llm.api_key, "NS_LLM_API_KEY") &&
        env_default(&cfg->telegram.bot_token, "NS_TELEGRAM_BOT_TOKEN") &&
        env_default(&cfg->smtp.url, "NS_SMTP_URL") &&
        env_default(&cfg->smtp.user, "NS_SMTP_USER") &&
        env_default(&cfg->smtp.password, "NS_SMTP_PASSWORD") &&
        env_default(&cfg->smtp.from, "NS_SMTP_FROM") &&
        (cfg->smtp.from[0] != '\0' ||
         replace_str(&cfg->smtp.from, "nightshift@localhost")) &&
        set_default(&cfg->smtp.starttls, "required") &&
        env_default(&cfg->ingest.secret_token, "NS_TELEGRAM_WEBHOOK_SECRET") &&
        set_default(&cfg->ingest.bind, "0.0.0.0") &&
        set_default(&cfg->ingest.topic, "ns.ingest.telegram") &&
        env_default(&cfg->ui.token, "NS_UI_TOKEN") &&
        set_default(&cfg->ui.bind, "127.0.0.1") &&
        env_default(&cfg->confluence.base_url, "NS_CONFLUENCE_URL") &&
        env_default(&cfg->confluence.user, "NS_CONFLUENCE_USER") &&
        env_default(&cfg->confluence.token, "NS_CONFLUENCE_TOKEN") &&
        set_default(&cfg->confluence.auth,
                    cfg->confluence.user[0] ? "basic" : "bearer");
    if (!ok)
        return ns_error_set(y->err, NS_ERR_NOMEM, "%s: out of memory", y->path);
    const char *tls = cfg->smtp.starttls;
    if (strcmp(tls, "none") != 0 && strcmp(tls, "try") != 0 &&
        strcmp(tls, "required") != 0)
        return ns_error_set(y->err, NS_ERR_INVALID,
                            "%s: smtp.starttls is \"%s\": use none, try or "
                            "required",
                            y->path, tls);
    if (ns_mail_check_address(cfg->smtp.from, y->err) != NS_OK)
        return ns_error_set(y->err, NS_ERR_INVALID, "%s: smtp.from: %s",
                            y->path, y->err->msg);
    const char *auth = cfg->confluence.auth;
    if (strcmp(auth, "basic") != 0 && strcmp(auth, "bearer") != 0)
        return ns_error_set(y->err, NS_ERR_INVALID,
                            "%s: confluence.auth is \"%s\": use basic or "
                            "bearer",
                            y->path, auth);
    const char *curl = cfg->confluence.base_url;
    if (curl[0] != '\0' && strncmp(curl, "https://", 8) != 0 &&
        strncmp(curl, "http://127.0.0.1", 16) != 0 &&
        strncmp(curl, "http://localhost", 16) != 0)
        return ns_error_set(y->err, NS_ERR_INVALID,
                            "%s: confluence.base_url must be an https:// URL "
                            "(http only on loopback)",
                            y->path);
    return check_teams_targets(ld);
}

ns_config_t *ns_config_load(const char *path, ns_handler_known_fn known,
                            ns_error_t *err)
{
    ns_error_clear(err);
    if (path == NULL) {
        ns_error_set(err, NS_ERR_INVALID, "config: no path");
        return NULL;
    }
    yaml_document_t doc;
    if (ns_yaml_load_file(path, CONFIG_MAX_BYTES, &doc, err) != NS_OK)
        return NULL;
    loader_t ld = {
        .y = {.doc = &doc,
              .path = path,
              .err = err,
              .json_budget = CONFIG_JSON_BUDGET},
        .cfg = config_new(path),
        .known = known,
    };
    ns_err_t rc = ld.cfg != NULL ? parse_root(&ld)
                                 : ns_error_set(err, NS_ERR_NOMEM,
                                                "%s: out of memory", path);
    yaml_document_delete(&doc);
    if (rc != NS_OK) {
        ns_config_destroy(ld.cfg);
        return NULL;
    }
    ns_log_add_secret(ld.cfg->llm.api_key);
    ns_log_add_secret(ld.cfg->telegram.bot_token);
    ns_log_add_secret(ld.cfg->smtp.password);
    ns_log_add_secret(ld.cfg->ingest.secret_token);
    ns_log_add_secret(ld.cfg->ui.token);
    ns_log_add_secret(ld.cfg->confluence.token);
    for (size_t i = 0; i < ld.cfg->teams.n_webhooks; i++)
        ns_log_add_secret(ld.cfg->teams.webhooks[i].value);
    return ld.cfg;
}

static void job_free(ns_job_t *job)
{
    free(job->name);
    free(job->schedule);
    if (job->cron != NULL)
        ns_cron_destroy(job->cron);
    free(job->timezone);
    free(job->source.query);
    free(job->source.key_column);
    free(job->source.table);
    free(job->source.topic);
    free(job->source.order_column);
    free(job->source.reprocess_query);
    free(job->source.services_query);
    free(job->handler);
    free(job->finalizer);
    cJSON_Delete(job->notify);
    cJSON_Delete(job->params);
}

void ns_config_destroy(ns_config_t *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->pg_dsn);
    free(cfg->redis_url);
    free(cfg->kafka_brokers);
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        free(cfg->rate_limits[i].key);
        free(cfg->rate_limits[i].value);
    }
    free(cfg->rate_limits);
    for (size_t i = 0; i < cfg->teams.n_webhooks; i++) {
        free(cfg->teams.webhooks[i].key);
        free(cfg->teams.webhooks[i].value);
    }
    free(cfg->teams.webhooks);
    free(cfg->confluence.base_url);
    free(cfg->confluence.user);
    free(cfg->confluence.token);
    free(cfg->confluence.auth);
    free(cfg->llm.base_url);
    free(cfg->llm.model);
    free(cfg->retry_tiers);
    free(cfg->llm.api_key);
    free(cfg->telegram.api_url);
    free(cfg->telegram.bot_token);
    free(cfg->smtp.url);
    free(cfg->smtp.user);
    free(cfg->smtp.password);
    free(cfg->smtp.from);
    free(cfg->smtp.starttls);
    free(cfg->ingest.bind);
    free(cfg->ingest.secret_token);
    free(cfg->ingest.topic);
    free(cfg->ui.bind);
    free(cfg->ui.token);
    for (size_t i = 0; i < cfg->n_jobs; i++)
        job_free(&cfg->jobs[i]);
    free(cfg->jobs);
    free(cfg);
}

const ns_job_t *ns_config_job(const ns_config_t *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_jobs; i++)
        if (cfg->jobs[i].name != NULL && strcmp(cfg->jobs[i].name, name) == 0)
            return &cfg->jobs[i];
    return NULL;
}
