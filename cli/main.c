/* nightshift: one binary, subcommands. Parses arguments, installs signal
 * handlers and calls the library; nothing else lives here. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill.h"
#include "configcheck.h"
#include "dlq.h"
#include "handler.h"
#include "help.h"
#include "ingest.h"
#include "logs.h"
#include "ns/config.h"
#include "ns/http.h"
#include "ns/log.h"
#include "ops.h"
#include "producer.h"
#include "ui.h"
#include "worker.h"

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

typedef struct args {
    const char *config;
    const char *positional[4];
    int n_positional;
    bool dry_run, wait, json;
    int timeout_s;
    const char *port_file;
    const char *job, *item, *since, *id, *limit; /* dlq filters */
    const char *lang;                            /* stopwords rollback */
    const char *slot;                            /* run --slot */
    bool reprocess;                              /* run --reprocess */
    const char *from, *to;                       /* backfill */
    int max_concurrent;                          /* backfill */
    const char *type;                            /* run --type */
    const char *bind;                            /* ui --bind */
    const char *port;                            /* ui --port */
    char error[300];                             /* why parse() refused */
} args_t;

/* -c FILE, --config FILE or --config=FILE at argv[*i]: 1 (consumed), 0
 * (not that option), -1 (its value is missing). */
static int config_option(int argc, char **argv, int *i, const char **config)
{
    const char *s = argv[*i];
    if (strncmp(s, "--config=", 9) == 0) {
        *config = s + 9;
        return 1;
    }
    if (strcmp(s, "-c") != 0 && strcmp(s, "--config") != 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "nightshift: %s needs a file\n", s);
        return -1;
    }
    *config = argv[++*i];
    return 1;
}

/* The verb's arguments, argv[first..argc). */
static int parse(int argc, char **argv, int first, args_t *a)
{
    for (int i = first; i < argc; i++) {
        const char *s = argv[i];
        int c = config_option(argc, argv, &i, &a->config);
        if (c < 0)
            return -1;
        if (c > 0)
            continue;
        else if (strcmp(s, "--dry-run") == 0)
            a->dry_run = true;
        else if (strcmp(s, "--wait") == 0)
            a->wait = true;
        else if (strcmp(s, "--json") == 0)
            a->json = true;
        else if (strcmp(s, "--timeout") == 0 && i + 1 < argc)
            a->timeout_s = atoi(argv[++i]);
        else if (strcmp(s, "--port-file") == 0 && i + 1 < argc)
            a->port_file = argv[++i];
        else if (strcmp(s, "--job") == 0 && i + 1 < argc)
            a->job = argv[++i];
        else if (strcmp(s, "--item") == 0 && i + 1 < argc)
            a->item = argv[++i];
        else if (strcmp(s, "--since") == 0 && i + 1 < argc)
            a->since = argv[++i];
        else if (strcmp(s, "--id") == 0 && i + 1 < argc)
            a->id = argv[++i];
        else if (strcmp(s, "--limit") == 0 && i + 1 < argc)
            a->limit = argv[++i];
        else if (strcmp(s, "--lang") == 0 && i + 1 < argc)
            a->lang = argv[++i];
        else if (strcmp(s, "--slot") == 0 && i + 1 < argc)
            a->slot = argv[++i];
        else if (strcmp(s, "--reprocess") == 0)
            a->reprocess = true;
        else if (strcmp(s, "--from") == 0 && i + 1 < argc)
            a->from = argv[++i];
        else if (strcmp(s, "--to") == 0 && i + 1 < argc)
            a->to = argv[++i];
        else if (strcmp(s, "--max-concurrent") == 0 && i + 1 < argc)
            a->max_concurrent = atoi(argv[++i]);
        else if (strcmp(s, "--type") == 0 && i + 1 < argc)
            a->type = argv[++i];
        else if (strcmp(s, "--bind") == 0 && i + 1 < argc)
            a->bind = argv[++i];
        else if (strcmp(s, "--port") == 0 && i + 1 < argc)
            a->port = argv[++i];
        else if (s[0] == '-') {
            snprintf(a->error, sizeof(a->error), "unknown option %s", s);
            return -1;
        } else if (a->n_positional < 4) {
            a->positional[a->n_positional++] = s;
        } else {
            snprintf(a->error, sizeof(a->error), "too many arguments");
            return -1;
        }
    }
    return 0;
}

static ns_config_t *load(const char *path)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_config_t *cfg = ns_config_load(path, ns_handler_known, &err);
    if (cfg == NULL)
        fprintf(stderr, "%s\n", err.msg);
    return cfg;
}

static int cmd_daemon(const char *cmd, const args_t *a)
{
    ns_config_t *cfg = load(a->config);
    if (cfg == NULL)
        return 2;
    ns_error_t err;
    ns_error_clear(&err);
    int rc = 1;
    if (strcmp(cmd, "producer") == 0) {
        ns_producer_t *p = ns_producer_new(cfg, &err);
        if (p != NULL) {
            rc = ns_producer_run(p, &running);
            ns_producer_destroy(p);
        }
    } else {
        ns_worker_t *w = ns_worker_new(cfg, &err);
        if (w != NULL) {
            rc = ns_worker_run(w, &running);
            ns_worker_destroy(w);
        }
    }
    if (rc != 0 && err.msg[0] != '\0')
        NS_ERROR(NULL, "%s", err.msg);
    if (rc != 0) {
        /* A worker that exceeded its grace period still has threads in
         * handlers using cfg: leave without tearing anything down. */
        fflush(NULL);
        _exit(rc);
    }
    ns_config_destroy(cfg);
    return rc;
}

/* The port goes to --port-file once listening (tests bind port 0). */
static void write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "%d\n", port);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static int cmd_ingest(const args_t *a)
{
    ns_config_t *cfg = load(a->config);
    if (cfg == NULL)
        return 2;
    ns_error_t err;
    ns_error_clear(&err);
    ns_ingest_t *in = ns_ingest_new(cfg, &err);
    int rc = 1;
    if (in != NULL) {
        if (a->port_file != NULL)
            write_port_file(a->port_file, ns_ingest_port(in));
        rc = ns_ingest_run(in, &running);
        ns_ingest_destroy(in);
    } else {
        NS_ERROR(NULL, "%s", err.msg);
    }
    ns_config_destroy(cfg);
    return rc;
}

static int cmd_ui(const args_t *a)
{
    if (a->n_positional > 0)
        return ns_cli_usage_error("ui", NULL, "ui takes no arguments");
    int port = -1;
    if (a->port != NULL) {
        char *end = NULL;
        long n = strtol(a->port, &end, 10);
        if (end == a->port || *end != '\0' || n < 0 || n > 65535)
            return ns_cli_usage_error("ui", NULL,
                                      "--port wants a number from 0 to 65535");
        port = (int)n;
    }
    ns_config_t *cfg = load(a->config);
    if (cfg == NULL)
        return 2;
    ns_error_t err;
    ns_error_clear(&err);
    ns_ui_t *ui = ns_ui_new(cfg, a->bind, port, ns_cli_version_string(), &err);
    int rc = 1;
    if (ui != NULL) {
        if (a->port_file != NULL)
            write_port_file(a->port_file, ns_ui_port(ui));
        rc = ns_ui_run(ui, &running);
        ns_ui_destroy(ui);
    } else {
        NS_ERROR(NULL, "%s", err.msg);
    }
    ns_config_destroy(cfg);
    return rc;
}

static int cmd_dlq(const args_t *a)
{
    const char *verb = a->n_positional > 0 ? a->positional[0] : "";
    bool show = strcmp(verb, "show") == 0;
    if (!show && strcmp(verb, "list") != 0 && strcmp(verb, "replay") != 0)
        return ns_cli_usage_error("dlq", NULL,
                                  verb[0] ? "unknown sub-command"
                                          : "list, show or replay?");
    if (a->n_positional != (show ? 2 : 1))
        return ns_cli_usage_error("dlq", verb,
                                  show ? "which dead letter (ID)?"
                                       : "too many arguments");
    ns_config_t *cfg = load(a->config);
    if (cfg == NULL)
        return 2;
    ns_dlq_filter_t filter = {.job = a->job,
                              .item = a->item,
                              .since = a->since,
                              .id = a->id,
                              .limit = a->limit ? atoi(a->limit) : 100};
    int rc;
    if (show)
        rc = ns_dlq_show(cfg, a->positional[1], a->json, stdout);
    else if (strcmp(verb, "list") == 0)
        rc = ns_dlq_list(cfg, &filter, a->json, stdout);
    else
        rc = ns_dlq_replay(cfg, &filter, a->dry_run, stdout);
    ns_config_destroy(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    args_t a = {0};
    const char *env = getenv("NS_CONFIG");
    a.config = env && *env ? env : "config/jobs.yaml";
    /* Global options go before the verb too, as with git and kubectl:
     * nightshift -c FILE migrate. */
    int verb = 1;
    for (; verb < argc && argv[verb][0] == '-'; verb++) {
        const char *s = argv[verb];
        int c = config_option(argc, argv, &verb, &a.config);
        if (c < 0) {
            ns_cli_usage(stderr);
            return 2;
        }
        if (c > 0)
            continue;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            ns_cli_usage(stdout);
            return 0;
        }
        if (strcmp(s, "--version") == 0)
            break;
        fprintf(stderr,
                "nightshift: unknown option %s (global options: -c FILE)\n\n",
                s);
        ns_cli_usage(stderr);
        return 2;
    }
    if (verb >= argc) {
        ns_cli_usage(stderr);
        return 2;
    }
    const char *cmd = argv[verb];
    const char *next =
        verb + 1 < argc && argv[verb + 1][0] != '-' ? argv[verb + 1] : NULL;
    if (strcmp(cmd, "help") == 0) {
        if (next == NULL) {
            ns_cli_usage(stdout);
            return 0;
        }
        return ns_cli_help(next, verb + 2 < argc ? argv[verb + 2] : NULL,
                           stdout);
    }
    /* Every verb and sub-verb answers -h / --help with its own usage. */
    if (ns_cli_wants_help(argc, argv, verb + 1))
        return ns_cli_help(cmd, next, stdout);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        bool json = false;
        for (int i = verb + 1; i < argc; i++) {
            if (strcmp(argv[i], "--json") != 0) {
                char what[160];
                snprintf(what, sizeof(what), "unknown option %s", argv[i]);
                return ns_cli_usage_error("version", NULL, what);
            }
            json = true;
        }
        ns_cli_version(stdout, json);
        return 0;
    }
    if (strcmp(cmd, "completion") == 0)
        return ns_cli_completion(next, stdout);
    if (parse(argc, argv, verb + 1, &a) != 0)
        return ns_cli_usage_error(cmd, next, a.error);
    install_signals();
    ns_log_init(cmd, NS_LOG_INFO);
    ns_http_global_init();

    if (strcmp(cmd, "logs") == 0) {
        if (a.n_positional < 1 || strcmp(a.positional[0], "parse") != 0 ||
            a.n_positional > 2)
            return ns_cli_usage_error(cmd, next, "logs parse [FILE|-]?");
        return ns_ops_logs_parse(a.n_positional > 1 ? a.positional[1] : NULL,
                                 a.json, stdout, stderr);
    }
    if (strcmp(cmd, "producer") == 0 || strcmp(cmd, "worker") == 0)
        return cmd_daemon(cmd, &a);
    if (strcmp(cmd, "ingest") == 0)
        return cmd_ingest(&a);
    if (strcmp(cmd, "ui") == 0)
        return cmd_ui(&a);
    if (strcmp(cmd, "dev-broker") == 0) {
        /* Without a readable config the broker still starts, topic-less. */
        ns_error_t err;
        ns_config_t *cfg = ns_config_load(a.config, ns_handler_known, &err);
        int rc = ns_ops_dev_broker(cfg, a.port_file, stdout, &running);
        ns_config_destroy(cfg);
        return rc;
    }
    if (strcmp(cmd, "config") == 0) {
        if (a.n_positional < 1 || strcmp(a.positional[0], "check") != 0)
            return ns_cli_usage_error(cmd, next, "wrong arguments");
        const char *path = a.n_positional > 1 ? a.positional[1] : a.config;
        return ns_ops_config_check(path, ns_handler_known, a.json,
                                   (int64_t)time(NULL), stdout, stderr);
    }
    if (strcmp(cmd, "migrate") == 0) {
        const char *dsn = ns_ops_migrate_dsn();
        ns_config_t *cfg = NULL;
        if (dsn == NULL || *dsn == '\0') {
            cfg = load(a.config);
            if (cfg == NULL)
                return 2;
            dsn = cfg->pg_dsn;
        }
        int rc = ns_ops_migrate(dsn, stdout);
        ns_config_destroy(cfg);
        return rc;
    }
    if (strcmp(cmd, "dlq") == 0)
        return cmd_dlq(&a);
    if (strcmp(cmd, "stopwords") == 0) {
        if (a.n_positional != 1 || strcmp(a.positional[0], "rollback") != 0)
            return ns_cli_usage_error(cmd, next, "wrong arguments");
        ns_config_t *cfg = load(a.config);
        if (cfg == NULL)
            return 2;
        int rc = ns_ops_stopwords_rollback(cfg, a.job, a.lang, stdout);
        ns_config_destroy(cfg);
        return rc;
    }
    if (strcmp(cmd, "backfill") == 0) {
        if (a.n_positional != 1)
            return ns_cli_usage_error(cmd, next, "wrong arguments");
        ns_config_t *cfg = load(a.config);
        if (cfg == NULL)
            return 2;
        ns_backfill_opts_t opts = {.job = a.positional[0],
                                   .from = a.from,
                                   .to = a.to,
                                   .dry_run = a.dry_run,
                                   .max_concurrent = a.max_concurrent,
                                   .timeout_s = a.timeout_s};
        int rc = ns_ops_backfill(cfg, &opts, stdout, &running);
        ns_config_destroy(cfg);
        return rc;
    }
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "status") == 0) {
        ns_config_t *cfg = load(a.config);
        if (cfg == NULL)
            return 2;
        int rc;
        if (strcmp(cmd, "run") == 0) {
            if (a.n_positional != 1) {
                ns_config_destroy(cfg);
                return ns_cli_usage_error(cmd, next, "wrong arguments");
            }
            ns_run_opts_t opts = {.job = a.positional[0],
                                  .dry_run = a.dry_run,
                                  .wait = a.wait,
                                  .timeout_s = a.timeout_s,
                                  .slot = a.slot,
                                  .reprocess = a.reprocess,
                                  .since = a.since,
                                  .type = a.type};
            rc = ns_ops_run(cfg, &opts, stdout, &running);
        } else {
            rc = ns_ops_status(cfg, a.n_positional ? a.positional[0] : NULL,
                               a.json, stdout);
        }
        ns_config_destroy(cfg);
        return rc;
    }
    return ns_cli_help(cmd, NULL, stdout); /* unknown: says so, exit 2 */
}
