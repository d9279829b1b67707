/* The handler table: one row per kind of work. Adding a handler is one
 * row here plus its file in this directory. */
#include <string.h>

#include "handler.h"
#include "handlers.h"

/* name, function, is_finalizer, batch, cpu_bound, and for handlers that are
 * one HTTP request its two halves (see handler.h) */
static const ns_handler_def_t handlers[] = {
    {"analyzer.project", ns_analyzer_project, 0, 0, 0, NULL, NULL},
    {"analyzer.summary", ns_analyzer_summary, 1, 0, 0, NULL, NULL},
    {"noop", ns_noop, 0, 1, 0, NULL, NULL},
    {"webhook.post", ns_webhook_post, 0, 0, 0, ns_webhook_request,
     ns_webhook_response},
    {"stopwords.count", ns_stopwords_count, 0, 0, 1, NULL, NULL},
    {"stopwords.merge", ns_stopwords_merge, 1, 0, 0, NULL, NULL},
    {"reports.hourly", ns_reports_hourly, 0, 0, 0, NULL, NULL},
    {"reports.alert", ns_reports_alert, 1, 0, 0, NULL, NULL},
    {"ingest.telegram", ns_ingest_telegram, 0, 0, 0, NULL, NULL},
    {"structure.message", ns_structure_message, 0, 0, 0, NULL, NULL},
    {"logs.window", ns_logs_window, 0, 0, 1, NULL, NULL},
    {"logs.daily_report", ns_logs_daily_report, 1, 0, 0, NULL, NULL},
};

const ns_handler_def_t *ns_handler_find(const char *name, int is_finalizer)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (handlers[i].is_finalizer == is_finalizer &&
            strcmp(handlers[i].name, name) == 0)
            return &handlers[i];
    return NULL;
}

int ns_handler_known(const char *name, int is_finalizer)
{
    return ns_handler_find(name, is_finalizer) != NULL;
}
