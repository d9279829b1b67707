/* health.c: alerts on a job itself (see health.h).
 *   stale: no successful run for alerts.stale_minutes (the regular phase
 *     of the log analyzer: 30). One alert per episode: its key names the
 *     last successful run, so the next success ends the episode.
 *   failures: alerts.failed_runs failed runs in a row (the daily
 *     backfill: 3). One alert per streak: its key names the streak's
 *     first failed run.
 * The alert goes to notify.teams (an Adaptive Card) or else
 * notify.telegram, through the outbox like every other message. */
#include "health.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"

static void queue(PGconn *pg, const ns_config_t *cfg, const ns_job_t *job,
                  const char *key, const char *title, const char *text)
{
    const cJSON *teams = cJSON_GetObjectItemCaseSensitive(job->notify, "teams");
    const cJSON *hook = cJSON_GetObjectItemCaseSensitive(teams, "webhook");
    const char *url = cJSON_IsString(hook)
                          ? ns_config_teams_url(cfg, hook->valuestring)
                          : NULL;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(job->notify, "telegram");
    const cJSON *chat = cJSON_GetObjectItemCaseSensitive(tg, "chat_id");
    cJSON *payload = cJSON_CreateObject();
    const char *channel, *target;
    if (url != NULL && url[0] != '\0') {
        channel = "teams";
        target = hook->valuestring;
        cJSON_AddStringToObject(payload, "title", title);
        cJSON_AddStringToObject(payload, "text", text);
        cJSON_AddStringToObject(payload, "severity", "critical");
        cJSON *facts = cJSON_AddArrayToObject(payload, "facts");
        cJSON *f = cJSON_CreateArray();
        cJSON_AddItemToArray(f, cJSON_CreateString("job"));
        cJSON_AddItemToArray(f, cJSON_CreateString(job->name));
        cJSON_AddItemToArray(facts, f);
    } else if (cJSON_IsString(chat) && chat->valuestring[0] != '\0') {
        /* Plain text: Telegram's HTML mode needs &, < and > escaped, and
         * job names cannot hold them (jobs.yaml allows a-z 0-9 . _ -). */
        char html[700];
        snprintf(html, sizeof(html), "⚠️ <b>%s</b>\n%s", title, text);
        channel = "telegram";
        target = chat->valuestring;
        cJSON_AddStringToObject(payload, "text", html);
    } else {
        cJSON_Delete(payload);
        return; /* nowhere to send it: the metric still tells */
    }
    char *json = cJSON_PrintUnformatted(payload);
    cJSON_Delete(payload);
    const char *params[] = {key, channel, target, json};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = ns_pg_query(pg,
                              "INSERT INTO outbox (idempotency_key, channel, "
                              "target, payload) VALUES ($1, $2, $3, "
                              "$4::jsonb) ON CONFLICT (idempotency_key) DO "
                              "NOTHING",
                              4, params, &err);
    if (r != NULL && strcmp(PQcmdTuples(r), "1") == 0)
        NS_WARN(&(ns_log_ctx_t){.job = job->name}, "alert: %s", title);
    else if (r == NULL)
        NS_WARN(&(ns_log_ctx_t){.job = job->name}, "alert not queued: %s",
                err.msg);
    PQclear(r);
    free(json);
}

static void check_stale(PGconn *pg, const ns_config_t *cfg, const ns_job_t *job,
                        int64_t now_ms)
{
    char now[24];
    ns_pg_i64str(now_ms, now);
    const char *params[] = {job->name, now};
    ns_error_t err;
    PGresult *r = ns_pg_query(
        pg,
        "SELECT coalesce(max(run_id) FILTER (WHERE status = 'succeeded'), 0), "
        "floor(($2::bigint / 1000.0 - extract(epoch FROM coalesce(max("
        "finished_at) FILTER (WHERE status = 'succeeded'), min(created_at)))) "
        "/ 60) FROM runs WHERE job = $1 AND NOT dry_run HAVING count(*) > 0",
        2, params, &err);
    if (r != NULL && PQntuples(r) == 1 &&
        ns_pg_int64(r, 0, 1) >= job->alert_stale_min) {
        char key[300], title[300], text[300];
        snprintf(key, sizeof(key), "health:%s:stale:%s", job->name,
                 PQgetvalue(r, 0, 0));
        snprintf(title, sizeof(title), "%s: no successful run for %s minutes",
                 job->name, PQgetvalue(r, 0, 1));
        snprintf(text, sizeof(text),
                 "The last run of %s that succeeded is more than %d minutes "
                 "old. Check `nightshift status %s` and the workers.",
                 job->name, job->alert_stale_min, job->name);
        queue(pg, cfg, job, key, title, text);
    }
    PQclear(r);
}

static void check_failures(PGconn *pg, const ns_config_t *cfg,
                           const ns_job_t *job)
{
    const char *params[] = {job->name};
    ns_error_t err;
    PGresult *r = ns_pg_query(
        pg,
        "SELECT count(*), coalesce(min(run_id), 0) FROM runs WHERE job = $1 "
        "AND NOT dry_run AND status = 'failed' AND run_id > (SELECT "
        "coalesce(max(run_id), 0) FROM runs WHERE job = $1 AND NOT dry_run "
        "AND status = 'succeeded')",
        1, params, &err);
    if (r == NULL)
        return;
    int64_t streak = ns_pg_int64(r, 0, 0);
    char labels[300];
    snprintf(labels, sizeof(labels), "job=\"%s\"", job->name);
    ns_metrics_gauge_set("nightshift_job_failed_runs_in_a_row",
                         "Failed runs since the job's last success.", labels,
                         (double)streak);
    if (job->alert_failed_runs > 0 && streak >= job->alert_failed_runs) {
        char key[300], title[300], text[300];
        snprintf(key, sizeof(key), "health:%s:failed:%s", job->name,
                 PQgetvalue(r, 0, 1));
        snprintf(title, sizeof(title), "%s failed %lld times in a row",
                 job->name, (long long)streak);
        snprintf(text, sizeof(text),
                 "Runs of %s keep failing. `nightshift status %s` shows "
                 "each run's error; `nightshift backfill` replays the "
                 "slots once it is fixed.",
                 job->name, job->name);
        queue(pg, cfg, job, key, title, text);
    }
    PQclear(r);
}

void ns_health_check(PGconn *pg, const ns_config_t *cfg, int64_t now_ms)
{
    if (pg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_jobs; i++) {
        const ns_job_t *job = &cfg->jobs[i];
        if (job->source.kind == NS_SOURCE_STREAM)
            continue;
        if (job->alert_stale_min > 0 && !job->suspend)
            check_stale(pg, cfg, job, now_ms);
        check_failures(pg, cfg, job);
    }
}
