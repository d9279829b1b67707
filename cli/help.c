/* help.c: nightshift's command table (see help.h). Adding a verb is one
 * row here and its dispatch in main.c. */
#include "help.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zstd.h>

#ifndef NS_VERSION
#define NS_VERSION "0.1.0"
#endif
/* git_commit.c, written at every build (cmake/git_commit.cmake) */
extern const char ns_git_commit[];
#ifndef NS_BUILD_TYPE
#define NS_BUILD_TYPE "unknown"
#endif

typedef struct verb {
    const char *name;
    const char *sub;      /* NULL: the verb has no sub-verbs */
    const char *synopsis; /* after "nightshift " */
    const char *summary;  /* one line, for the top-level usage */
    const char *help;     /* what it does, options */
    const char *examples;
    const char *options; /* space-separated, for completion */
} verb_t;

static const verb_t verbs[] = {
    {"producer", NULL, "producer", "run the scheduler daemon",
     "Fires due cron slots (each slot once, whatever the number of\n"
     "producers), resumes runs a dead process left half-emitted, checks the\n"
     "jobs' alerts. Serves /metrics, /healthz, /readyz (producer.metrics_port)."
     "\nStops on SIGTERM or SIGINT.",
     "  nightshift producer -c /etc/nightshift/jobs.yaml", ""},
    {"worker", NULL, "worker", "run a worker (consumer-group member)",
     "Consumes item messages, runs the handlers, commits results with the\n"
     "items' status, delivers the outbox. Run as many replicas as there are\n"
     "partitions. SIGTERM: stops fetching, finishes or hands back in-flight\n"
     "items within worker.shutdown_grace_seconds, commits, leaves the group.",
     "  nightshift worker", ""},
    {"ingest", NULL, "ingest [--port-file F]",
     "the Telegram webhook endpoint (updates to Kafka)",
     "Answers Telegram's setWebhook calls only once the update is in Kafka\n"
     "(ns.ingest.telegram). Needs NS_TELEGRAM_WEBHOOK_SECRET.\n"
     "  --port-file F   write the bound port to F once listening",
     "  nightshift ingest", "--port-file"},
    {"ui", NULL, "ui [--bind ADDR] [--port N] [--port-file F]",
     "serve the status web page and its JSON API",
     "Jobs with their schedule, zone and next fire time; runs with live\n"
     "progress (done/total, rate, ETA); failed items with their reasons; dead\n"
     "letters. JSON under /api/v1 (described by /api/v1/openapi.json), plus\n"
     "/metrics and /healthz. Read-only unless NS_UI_TOKEN (ui.token) is set:\n"
     "then a dead letter can be replayed by whoever holds the token.\n"
     "  --bind ADDR     listen address (ui.bind, default 127.0.0.1)\n"
     "  --port N        port (ui.port, default 8089; 0 = any free port)\n"
     "  --port-file F   write the bound port to F once listening",
     "  nightshift ui                      # http://127.0.0.1:8089/\n"
     "  NS_UI_TOKEN=$(openssl rand -hex 24) nightshift ui --bind 0.0.0.0\n"
     "  curl -s localhost:8089/api/v1/runs?job=batch-analyzer",
     "--bind --port --port-file"},
    {"run", NULL,
     "run JOB [--dry-run] [--wait] [--timeout S] [--slot T] [--reprocess "
     "[--since T] [--type X]]",
     "start a manual run of JOB",
     "Records a run and emits its items now.\n"
     "  --dry-run     read and compute everything, write and send nothing; "
     "print what\n"
     "                would have been written and sent\n"
     "  --wait        follow the run to its end (exit 1 if it failed)\n"
     "  --timeout S   give up waiting after S seconds\n"
     "  --slot T      stand for the scheduled slot T (2026-11-30T06:00Z; no "
     "zone: the\n"
     "                job's)\n"
     "  --reprocess   the job's source.reprocess_query instead (--since, "
     "--type)",
     "  nightshift run batch-analyzer --wait\n"
     "  nightshift run reports-generator --slot 2026-11-30T06:00Z --dry-run "
     "--wait\n"
     "  nightshift run structuring --reprocess --type note --wait",
     "--dry-run --wait --timeout --slot --reprocess --since --type"},
    {"backfill", NULL,
     "backfill JOB --from T --to T [--dry-run] [--max-concurrent N] "
     "[--timeout S]",
     "one run per past slot of JOB",
     "One run (kind backfill) per cron slot of JOB in [--from, --to], at most\n"
     "N at once (default 1); a slot whose run succeeded before is skipped.\n"
     "T is a date (2026-11-30; --to includes the day) or a time. For a job\n"
     "whose source is windows with align: day, the dates are the days\n"
     "analysed.",
     "  nightshift backfill log-analyzer-backfill --from 2026-11-20 --to "
     "2026-11-22\n"
     "  nightshift backfill reports-generator --from 2026-11-30T00:00Z --to "
     "2026-11-30T06:00Z",
     "--from --to --dry-run --max-concurrent --timeout"},
    {"status", NULL, "status [JOB|RUN_ID] [--json]",
     "runs, item counts, delivery, last success",
     "The last 20 runs (of JOB), their items (done/failed/total), duration,\n"
     "the delivery of their messages (sent, pending, failed, rate, ETA), and\n"
     "each job's last success. For one RUN_ID also its failed items with\n"
     "their reasons and a dry run's report.\n"
     "  --json   the same as JSON",
     "  nightshift status\n  nightshift status batch-analyzer --json\n"
     "  nightshift status 42",
     "--json"},
    {"dlq", "list", "dlq list [--job J] [--since T] [--limit N] [--json]",
     "dead letters, newest first",
     "  --job J     only job J's\n"
     "  --since T   2026-11-23, 2026-11-23T10:00:00Z, or an age: 30m, 1h, 2d\n"
     "  --limit N   at most N (default 100; 0 = all)\n"
     "  --json      as JSON",
     "  nightshift dlq list --job structuring --since 1d",
     "--job --since "
     "--limit --json"},
    {"dlq", "show", "dlq show ID [--json]",
     "one dead letter: cause, origin, payload, history", "  --json   as JSON",
     "  nightshift dlq show 17", "--json"},
    {"dlq", "replay",
     "dlq replay [--job J] [--item KEY] [--since T] [--id ID] [--dry-run]",
     "re-inject dead letters into their job's topic",
     "Puts the matching dead letters back on their job's topic; an item that\n"
     "finished meanwhile is skipped, so replaying twice processes nothing\n"
     "twice.\n"
     "  --dry-run   say what would be replayed",
     "  nightshift dlq replay --job batch-analyzer --since 2h",
     "--job --item --since --id --dry-run"},
    {"stopwords", "rollback", "stopwords rollback [--job J] [--lang L]",
     "make the previous stopword sets current again",
     "Swaps the current and previous Redis sets (all languages, or L).",
     "  nightshift stopwords rollback --lang de", "--job --lang"},
    {"logs", "parse", "logs parse [FILE|-] [--json]",
     "group log lines into templates (no servers needed)",
     "Prints TEMPLATE_ID<TAB>TEMPLATE for each input line, in order, with the\n"
     "log analyzer's parser. Exit 1 when some lines were refused (invalid\n"
     "UTF-8, too long), 2 when FILE cannot be read.\n"
     "  --json   one JSON object per line",
     "  nightshift logs parse /var/log/syslog | cut -f2 | sort | uniq -c | "
     "sort -rn",
     "--json"},
    {"migrate", NULL, "migrate", "apply database migrations",
     "Applies the SQL migrations compiled into the binary, each in its own\n"
     "transaction; safe when several processes start at once. Runs as the\n"
     "DDL role: $NS_PG_DDL_DSN (else $NS_PG_DSN, else the config's\n"
     "postgres:), after SET ROLE $NS_PG_DDL_ROLE when that is set; then, with\n"
     "$NS_PG_RUNTIME_ROLE, grants that role the daemons' row privileges and\n"
     "nothing else (docs/database-roles.md).",
     "  nightshift migrate\n"
     "  NS_PG_DDL_DSN='host=db dbname=nightshift user=nightshift_migrator' \\\n"
     "    NS_PG_DDL_ROLE=nightshift_ddl NS_PG_RUNTIME_ROLE=nightshift_app \\\n"
     "    nightshift migrate",
     ""},
    {"config", "check", "config check [FILE] [--json]",
     "validate a jobs file, list its jobs",
     "Exit 0 when valid, listing each job with its schedule, time zone,\n"
     "next fire time (UTC) and handler; else FILE:LINE: message and exit 2.\n"
     "  --json   as JSON (an invalid file: {\"ok\": false, \"error\": ...})",
     "  nightshift config check config/jobs.yaml\n"
     "  nightshift config check --json | jq -r '.jobs[].next_fire'",
     "--json"},
    {"dev-broker", NULL, "dev-broker [--port-file F]",
     "embedded Kafka (librdkafka mock) for the demo",
     "Not for production: the demo's embedded broker.\n"
     "  --port-file F   write the bootstrap address's port to F",
     "  nightshift dev-broker --port-file /tmp/broker", "--port-file"},
    {"completion", NULL, "completion bash|zsh", "shell completion script",
     "Prints a completion script made from this command table.",
     "  source <(nightshift completion bash)\n"
     "  nightshift completion zsh > \"${fpath[1]}/_nightshift\"",
     ""},
    {"version", NULL, "version [--json]", "version, commit and libraries",
     "The version, the commit it was built from, the build type, and the\n"
     "versions of the libraries it runs with.\n"
     "  --json   as JSON",
     "  nightshift version\n  nightshift version --json", "--json"},
};

#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

static const char *const epilogue =
    "options (before or after the command):\n"
    "  -c, --config FILE   jobs file (default $NS_CONFIG or "
    "config/jobs.yaml)\n"
    "  -h, --help          help (of a command: nightshift COMMAND --help)\n\n"
    "connections come from NS_PG_DSN, NS_REDIS_URL, NS_KAFKA_BROKERS.\n"
    "exit status: 0 success, 1 failure (a run failed, a server is down), 2 "
    "usage\nor configuration error.\n";

void ns_cli_usage(FILE *out)
{
    fprintf(out, "usage: nightshift [-c FILE] <command> [options]\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_VERBS; i++) {
        char head[64];
        snprintf(head, sizeof(head), "%s%s%s", verbs[i].name,
                 verbs[i].sub ? " " : "", verbs[i].sub ? verbs[i].sub : "");
        fprintf(out, "  %-20s %s\n", head, verbs[i].summary);
    }
    fprintf(out, "\n%s", epilogue);
}

static const verb_t *find(const char *verb, const char *sub)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(verbs[i].name, verb) == 0 &&
            (verbs[i].sub == NULL || (sub && strcmp(verbs[i].sub, sub) == 0)))
            return &verbs[i];
    return NULL;
}

static int has_subs(const char *verb)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(verbs[i].name, verb) == 0 && verbs[i].sub != NULL)
            return 1;
    return 0;
}

static void print_verb(const verb_t *v, FILE *out)
{
    fprintf(out, "usage: nightshift %s\n\n%s.\n\n%s\n\nexamples:\n%s\n",
            v->synopsis, v->summary, v->help, v->examples);
}

int ns_cli_help(const char *verb, const char *sub, FILE *out)
{
    const verb_t *v = find(verb, sub);
    if (v != NULL) {
        print_verb(v, out);
        return 0;
    }
    if (has_subs(verb)) {
        /* "nightshift dlq --help": every sub-verb. */
        for (size_t i = 0; i < N_VERBS; i++)
            if (strcmp(verbs[i].name, verb) == 0) {
                print_verb(&verbs[i], out);
                fprintf(out, "\n");
            }
        return 0;
    }
    fprintf(stderr, "nightshift: unknown command \"%s\"\n\n", verb);
    ns_cli_usage(stderr);
    return 2;
}

int ns_cli_usage_error(const char *verb, const char *sub, const char *what)
{
    const verb_t *v = find(verb, sub);
    fprintf(stderr, "nightshift %s%s%s: %s\n", verb, sub ? " " : "",
            sub ? sub : "", what);
    if (v != NULL)
        fprintf(stderr, "usage: nightshift %s\n", v->synopsis);
    else if (has_subs(verb))
        for (size_t i = 0; i < N_VERBS; i++)
            if (strcmp(verbs[i].name, verb) == 0)
                fprintf(stderr, "usage: nightshift %s\n", verbs[i].synopsis);
    fprintf(stderr, "(nightshift %s --help for more)\n", verb);
    return 2;
}

int ns_cli_wants_help(int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

/* The verbs (unique), the sub-verbs of each, the options of each. */
static void completion_bash(FILE *out)
{
    fprintf(out, "# bash completion for nightshift (nightshift completion "
                 "bash)\n_nightshift() {\n"
                 "    local cur=${COMP_WORDS[COMP_CWORD]}\n"
                 "    local verb=${COMP_WORDS[1]} sub=${COMP_WORDS[2]}\n"
                 "    if ((COMP_CWORD == 1)); then\n"
                 "        COMPREPLY=($(compgen -W \"");
    for (size_t i = 0; i < N_VERBS; i++)
        if (i == 0 || strcmp(verbs[i].name, verbs[i - 1].name) != 0)
            fprintf(out, "%s ", verbs[i].name);
    fprintf(out, "-c --config --help\" -- \"$cur\"))\n        return\n    fi\n"
                 "    case $verb in\n");
    for (size_t i = 0; i < N_VERBS; i++) {
        if (verbs[i].sub == NULL ||
            (i > 0 && strcmp(verbs[i].name, verbs[i - 1].name) == 0))
            continue;
        fprintf(out,
                "    %s) if ((COMP_CWORD == 2)); then COMPREPLY=($(compgen "
                "-W \"",
                verbs[i].name);
        for (size_t j = i;
             j < N_VERBS && strcmp(verbs[j].name, verbs[i].name) == 0; j++)
            fprintf(out, "%s ", verbs[j].sub);
        fprintf(out, "--help\" -- \"$cur\")); return; fi;;\n");
    }
    fprintf(out, "    esac\n    local opts=\"-c --config --help\"\n"
                 "    case \"$verb $sub\" in\n");
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(out, "    \"%s %s\"%s) opts=\"$opts %s\";;\n", verbs[i].name,
                verbs[i].sub ? verbs[i].sub : "", verbs[i].sub ? "" : "*",
                verbs[i].options);
    fprintf(out, "    esac\n"
                 "    if [[ $cur == -* ]]; then\n"
                 "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
                 "    else\n"
                 "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
                 "    fi\n}\ncomplete -F _nightshift nightshift\n");
}

static void completion_zsh(FILE *out)
{
    fprintf(out, "#compdef nightshift\n# zsh completion for nightshift "
                 "(nightshift completion zsh)\n_nightshift() {\n"
                 "    local verb=${words[2]} sub=${words[3]}\n"
                 "    if (( CURRENT == 2 )); then\n        compadd -- ");
    for (size_t i = 0; i < N_VERBS; i++)
        if (i == 0 || strcmp(verbs[i].name, verbs[i - 1].name) != 0)
            fprintf(out, "%s ", verbs[i].name);
    fprintf(out, "\n        return\n    fi\n    case $verb in\n");
    for (size_t i = 0; i < N_VERBS; i++) {
        if (verbs[i].sub == NULL ||
            (i > 0 && strcmp(verbs[i].name, verbs[i - 1].name) == 0))
            continue;
        fprintf(out, "    %s) if (( CURRENT == 3 )); then compadd -- ",
                verbs[i].name);
        for (size_t j = i;
             j < N_VERBS && strcmp(verbs[j].name, verbs[i].name) == 0; j++)
            fprintf(out, "%s ", verbs[j].sub);
        fprintf(out, "; return; fi;;\n");
    }
    fprintf(out, "    esac\n    local -a opts\n    opts=(-c --config --help)\n"
                 "    case \"$verb $sub\" in\n");
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(out, "    \"%s %s\"%s) opts+=(%s);;\n", verbs[i].name,
                verbs[i].sub ? verbs[i].sub : "", verbs[i].sub ? "" : "*",
                verbs[i].options);
    fprintf(out, "    esac\n"
                 "    if [[ $PREFIX == -* ]]; then compadd -- $opts; else "
                 "_files; fi\n}\n_nightshift \"$@\"\n");
}

int ns_cli_completion(const char *shell, FILE *out)
{
    if (shell != NULL && strcmp(shell, "bash") == 0) {
        completion_bash(out);
        return 0;
    }
    if (shell != NULL && strcmp(shell, "zsh") == 0) {
        completion_zsh(out);
        return 0;
    }
    return ns_cli_usage_error("completion", NULL, "name a shell: bash or zsh");
}

const char *ns_cli_version_string(void)
{
    static char v[96];
    snprintf(v, sizeof(v), "%s (%s)", NS_VERSION, ns_git_commit);
    return v;
}

void ns_cli_version(FILE *out, bool json)
{
    char pq[16], hiredis[16];
    snprintf(pq, sizeof(pq), "%d", PQlibVersion());
    snprintf(hiredis, sizeof(hiredis), "%d.%d.%d", HIREDIS_MAJOR, HIREDIS_MINOR,
             HIREDIS_PATCH);
    curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    if (!json) {
        fprintf(out, "nightshift %s (commit %s, %s build)\n", NS_VERSION,
                ns_git_commit, NS_BUILD_TYPE);
        fprintf(out,
                "librdkafka %s, libcurl %s, libpq %s, hiredis %s, cJSON %s, "
                "zstd %s, utf8proc %s\n",
                rd_kafka_version_str(), curl->version, pq, hiredis,
                cJSON_Version(), ZSTD_versionString(), utf8proc_version());
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", NS_VERSION);
    cJSON_AddStringToObject(o, "commit", ns_git_commit);
    cJSON_AddStringToObject(o, "build", NS_BUILD_TYPE);
    cJSON *libs = cJSON_AddObjectToObject(o, "libraries");
    cJSON_AddStringToObject(libs, "librdkafka", rd_kafka_version_str());
    cJSON_AddStringToObject(libs, "libcurl", curl->version);
    cJSON_AddStringToObject(libs, "libpq", pq);
    cJSON_AddStringToObject(libs, "hiredis", hiredis);
    cJSON_AddStringToObject(libs, "cJSON", cJSON_Version());
    cJSON_AddStringToObject(libs, "zstd", ZSTD_versionString());
    cJSON_AddStringToObject(libs, "utf8proc", utf8proc_version());
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (text != NULL)
        fprintf(out, "%s\n", text);
    free(text);
}
