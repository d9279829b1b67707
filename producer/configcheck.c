#include "configcheck.h"

#include <stdlib.h>

#include "ns/clock.h"
#include "ns/cron.h"

const char *ns_source_kind_name(ns_source_kind_t kind)
{
    switch (kind) {
    case NS_SOURCE_ONE: return "one";
    case NS_SOURCE_SQL: return "sql";
    case NS_SOURCE_SHARDS: return "shards";
    case NS_SOURCE_STREAM: return "stream";
    case NS_SOURCE_WINDOWS: return "windows";
    }
    return "unknown";
}

/* The job's next fire time after now_s, as 2026-12-03T06:00:00.000Z in
 * out; false when it has none (manual only, suspended, or no slot in the
 * cron's five-year horizon). */
static bool next_fire(const ns_job_t *job, int64_t now_s, char *out, int len)
{
    if (job->cron == NULL || job->suspend)
        return false;
    int64_t at = ns_cron_next(job->cron, job->timezone, now_s);
    if (at < 0)
        return false;
    ns_clock_format_utc(at * 1000, out, len);
    return true;
}

static cJSON *str_or_null(const char *s)
{
    return s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull();
}

cJSON *ns_ops_job_json(const ns_job_t *job, int64_t now_s)
{
    cJSON *o = cJSON_CreateObject();
    char at[40];
    cJSON_AddStringToObject(o, "name", job->name);
    cJSON_AddItemToObject(o, "schedule", str_or_null(job->schedule));
    cJSON_AddStringToObject(o, "timezone", job->timezone);
    cJSON_AddBoolToObject(o, "suspend", job->suspend);
    cJSON_AddStringToObject(o, "source", ns_source_kind_name(job->source.kind));
    cJSON_AddStringToObject(o, "handler", job->handler);
    cJSON_AddItemToObject(o, "finalizer", str_or_null(job->finalizer));
    cJSON_AddNumberToObject(o, "partitions", job->max_parallelism);
    cJSON_AddItemToObject(
        o, "next_fire",
        str_or_null(next_fire(job, now_s, at, sizeof(at)) ? at : NULL));
    return o;
}

static int print_json(cJSON *o, FILE *out)
{
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (text == NULL)
        return -1;
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}

int ns_ops_config_check(const char *path, ns_handler_known_fn known, bool json,
                        int64_t now_s, FILE *out, FILE *errout)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_config_t *cfg = ns_config_load(path, known, &err);
    if (cfg == NULL) {
        if (!json) {
            fprintf(errout, "%s\n", err.msg);
            return 2;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddBoolToObject(o, "ok", false);
        cJSON_AddStringToObject(o, "error", err.msg);
        print_json(o, out);
        return 2;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddBoolToObject(o, "ok", true);
        cJSON *jobs = cJSON_AddArrayToObject(o, "jobs");
        for (size_t i = 0; i < cfg->n_jobs; i++)
            cJSON_AddItemToArray(jobs, ns_ops_job_json(&cfg->jobs[i], now_s));
        int rc = print_json(o, out) == 0 ? 0 : 2;
        ns_config_destroy(cfg);
        return rc;
    }
    fprintf(out, "%s: ok (%zu job%s)\n", path, cfg->n_jobs,
            cfg->n_jobs == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        char at[40], when[48];
        if (job->suspend)
            snprintf(when, sizeof(when), "suspended");
        else if (job->cron == NULL)
            snprintf(when, sizeof(when), "manual only");
        else if (next_fire(job, now_s, at, sizeof(at)))
            snprintf(when, sizeof(when), "next %s", at);
        else
            snprintf(when, sizeof(when), "never fires");
        fprintf(out, "  %-28s %-16s %-16s %-29s %s\n", job->name,
                job->schedule != NULL ? job->schedule : "-", job->timezone,
                when, job->handler);
    }
    ns_config_destroy(cfg);
    return 0;
}
