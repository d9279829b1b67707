/* `nightshift dlq replay`. A replay puts the original bytes back on the
 * job's topic; the worker's status check makes a message whose item is no
 * longer pending a no-op, so replaying twice never processes an item
 * twice. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "dlq_internal.h"
#include "ns/buf.h"
#include "ns/envelope.h"
#include "ns/kafka.h"
#include "ns/pg.h"

#define DELIVERY_TIMEOUT_MS 60000

typedef enum action {
    REPLAY,
    SKIP_DONE,       /* its item succeeded meanwhile */
    SKIP_SUPERSEDED, /* replayed before and dead-lettered again since */
    SKIP_CANCELLED,  /* its run was cancelled or skipped */
} action_t;

static const char *const skip_reasons[] = {
    [SKIP_DONE] = "already done",
    [SKIP_SUPERSEDED] = "superseded",
    [SKIP_CANCELLED] = "run cancelled",
};

typedef struct letter {
    int row;
    action_t action;
    bool reopen_item; /* its item is failed: back to pending */
    bool reopen_run;  /* its run is finished: back to running */
    char topic[NS_TOPIC_MAX];
    unsigned char *key, *payload;
    size_t key_len, len;
    int delivery; /* 0 waiting, 1 delivered, -1 failed */
    rd_kafka_resp_err_t err;
} letter_t;

typedef struct tally {
    int replayed, failed, items, runs, skipped[SKIP_CANCELLED + 1];
    bool aborted; /* nothing was changed or produced */
} tally_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    letter_t *l = m->_private;
    if (l == NULL)
        return;
    l->err = m->err;
    l->delivery = m->err ? -1 : 1;
}

static int is_finished(const char *run_status)
{
    return run_status != NULL && (strcmp(run_status, "succeeded") == 0 ||
                                  strcmp(run_status, "failed") == 0 ||
                                  strcmp(run_status, "finalizing") == 0);
}

static void plan(const ns_config_t *cfg, const PGresult *r, bool by_id,
                 letter_t *l)
{
    int row = l->row;
    const char *item = dlq_value_or_null(r, row, C_ITEM_STATUS);
    const char *run = dlq_value_or_null(r, row, C_RUN_STATUS);
    const char *job = dlq_value_or_null(r, row, C_JOB);
    if (item != NULL && strcmp(item, "done") == 0)
        l->action = SKIP_DONE;
    else if (!by_id && !PQgetisnull(r, row, C_SUPERSEDED_BY))
        l->action = SKIP_SUPERSEDED;
    else if (item != NULL && run != NULL &&
             (strcmp(run, "cancelled") == 0 || strcmp(run, "skipped") == 0))
        l->action = SKIP_CANCELLED;
    else
        l->action = REPLAY;
    l->reopen_item = l->action == REPLAY && item && strcmp(item, "failed") == 0;
    l->reopen_run = l->action == REPLAY && item != NULL && is_finished(run);
    /* A job this config does not know has no topic of ours: go back to
     * where the message came from. */
    if (job != NULL && ns_config_job(cfg, job) != NULL)
        ns_job_topic(ns_config_job(cfg, job), l->topic);
    else
        snprintf(l->topic, sizeof(l->topic), "%s", PQgetvalue(r, row, C_TOPIC));
}

/* One line per selected dead letter: what was (or would be) done. */
static void print_line(FILE *out, const PGresult *r, const letter_t *l,
                       bool dry_run)
{
    if (l->action == REPLAY && !dry_run && l->delivery != 1)
        return; /* reported on stderr */
    const char *verb = l->action == REPLAY
                           ? (dry_run ? "would replay" : "replayed")
                           : (dry_run ? "would skip" : "skipped");
    fprintf(out, "%s #%s", verb, PQgetvalue(r, l->row, C_ID));
    if (!PQgetisnull(r, l->row, C_RUN))
        fprintf(out, " run %s", PQgetvalue(r, l->row, C_RUN));
    char *key = dlq_key_text(r, l->row);
    fprintf(out, " item %s", key ? key : "-");
    free(key);
    if (l->action == SKIP_SUPERSEDED)
        fprintf(out, ": superseded by #%s\n",
                PQgetvalue(r, l->row, C_SUPERSEDED_BY));
    else if (l->action != REPLAY)
        fprintf(out, ": %s\n", skip_reasons[l->action]);
    else
        fprintf(out, " -> %s%s\n", l->topic,
                l->reopen_item && l->reopen_run ? " (item and run reopened)"
                : l->reopen_item                ? " (item reopened)"
                : l->reopen_run                 ? " (run reopened)"
                                                : "");
}

/* Items back to pending and their finished runs back to running, in one
 * transaction, before anything is produced: a worker that sees the
 * replayed message must find the item pending. */
static int reopen(PGconn *pg, const PGresult *r, const letter_t *ls, size_t n,
                  tally_t *t)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action != REPLAY || PQgetisnull(r, ls[i].row, C_ITEM_STATUS))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run_id", PQgetvalue(r, ls[i].row, C_RUN));
        cJSON_AddStringToObject(o, "item_key",
                                PQgetvalue(r, ls[i].row, C_ITEM));
        cJSON_AddItemToArray(arr, o);
    }
    char *json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    const char *params[] = {json};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *items = NULL, *runs = NULL;
    if (ns_pg_exec(pg, "BEGIN", 0, NULL, &err) == NS_OK)
        items = ns_pg_query(
            pg,
            "UPDATE items i SET status = 'pending', error = NULL, "
            "finished_at = NULL FROM jsonb_to_recordset($1::jsonb) AS "
            "x(run_id bigint, item_key text) WHERE i.run_id = x.run_id AND "
            "i.item_key = x.item_key AND i.status = 'failed'",
            1, params, &err);
    if (items != NULL)
        runs = ns_pg_query(
            pg,
            "UPDATE runs SET status = 'running', finished_at = NULL, "
            "finalize_after = NULL WHERE run_id IN (SELECT run_id FROM "
            "jsonb_to_recordset($1::jsonb) AS x(run_id bigint, item_key "
            "text)) AND status IN ('succeeded', 'failed', 'finalizing')",
            1, params, &err);
    int ok = runs != NULL && ns_pg_exec(pg, "COMMIT", 0, NULL, &err) == NS_OK;
    if (ok) {
        t->items = atoi(PQcmdTuples(items));
        t->runs = atoi(PQcmdTuples(runs));
    } else {
        ns_pg_rollback(pg);
        fprintf(stderr, "nightshift dlq replay: reopening items: %s\n",
                err.msg);
    }
    PQclear(items);
    PQclear(runs);
    free(json);
    return ok;
}

static void produce_one(rd_kafka_t *rk, letter_t *l, const char *id)
{
    const char *encoding = dlq_is_zstd(l->payload, l->len) ? "zstd" : "json";
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(l->topic), RD_KAFKA_V_KEY(l->key, l->key_len),
            RD_KAFKA_V_VALUE(l->payload, l->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(NS_HEADER_ENCODING, encoding, -1),
            RD_KAFKA_V_HEADER("ns-replay-of", id, -1), RD_KAFKA_V_OPAQUE(l),
            RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(rk, 100);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        l->delivery = -1;
        l->err = e;
    }
    rd_kafka_poll(rk, 0);
}

/* Produces every REPLAY letter and waits for the broker's acknowledgements
 * (acks=all). */
static void produce_all(rd_kafka_t *rk, const PGresult *r, letter_t *ls,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ls[i].action == REPLAY)
            produce_one(rk, &ls[i], PQgetvalue(r, ls[i].row, C_ID));
    rd_kafka_flush(rk, DELIVERY_TIMEOUT_MS);
    /* What is still queued now fails: its report arrives on this flush. */
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 5000);
}

static void mark_replayed(PGconn *pg, const PGresult *r, letter_t *ls, size_t n,
                          tally_t *t)
{
    ns_buf_t ids;
    ns_buf_init(&ids, SQL_MAX);
    ns_buf_adds(&ids, "{");
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action != REPLAY)
            continue;
        if (ls[i].delivery != 1) {
            t->failed++;
            fprintf(stderr,
                    "nightshift dlq replay: #%s not delivered to %s: %s\n",
                    PQgetvalue(r, ls[i].row, C_ID), ls[i].topic,
                    ls[i].delivery == 0 ? "no acknowledgement"
                                        : rd_kafka_err2str(ls[i].err));
            continue;
        }
        ns_buf_addf(&ids, "%s%s", t->replayed > 0 ? "," : "",
                    PQgetvalue(r, ls[i].row, C_ID));
        t->replayed++;
    }
    ns_buf_adds(&ids, "}");
    const char *params[] = {ids.data};
    ns_error_t err;
    ns_error_clear(&err);
    if (t->replayed > 0 &&
        ns_pg_exec(pg,
                   "UPDATE dead_letters SET replayed_at = now(), "
                   "replay_count = replay_count + 1 WHERE id = "
                   "ANY($1::bigint[])",
                   1, params, &err) != NS_OK)
        fprintf(stderr,
                "nightshift dlq replay: delivered, but recording it "
                "failed: %s\n",
                err.msg);
    ns_buf_free(&ids);
}

static void print_summary(FILE *out, const tally_t *t, bool dry_run)
{
    fprintf(out, "%s %d dead letter%s", dry_run ? "would replay" : "replayed",
            t->replayed, t->replayed == 1 ? "" : "s");
    const char *sep = " (";
    if (t->items > 0) {
        fprintf(out, "%s%d item%s reopened", sep, t->items,
                t->items == 1 ? "" : "s");
        sep = ", ";
    }
    if (t->runs > 0) {
        fprintf(out, "%s%d run%s reopened", sep, t->runs,
                t->runs == 1 ? "" : "s");
        sep = ", ";
    }
    for (int a = SKIP_DONE; a <= SKIP_CANCELLED; a++) {
        if (t->skipped[a] > 0) {
            fprintf(out, "%s%d skipped: %s", sep, t->skipped[a],
                    skip_reasons[a]);
            sep = ", ";
        }
    }
    if (t->failed > 0)
        fprintf(out, "%s%d not delivered", sep, t->failed);
    fprintf(out, "%s%s\n", sep[0] == ',' ? ")" : "",
            dry_run ? "; nothing changed (dry run)" : "");
}

/* Dry run: the counts the real replay would report. */
static void tally_plan(const PGresult *r, const letter_t *ls, size_t n,
                       tally_t *t)
{
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action != REPLAY) {
            t->skipped[ls[i].action]++;
            continue;
        }
        t->replayed++;
        t->items += ls[i].reopen_item;
        bool first = ls[i].reopen_run;
        for (size_t k = 0; first && k < i; k++)
            first = !(ls[k].reopen_run &&
                      strcmp(PQgetvalue(r, ls[k].row, C_RUN),
                             PQgetvalue(r, ls[i].row, C_RUN)) == 0);
        t->runs += first;
    }
}

static int execute(const ns_config_t *cfg, PGconn *pg, const PGresult *r,
                   letter_t *ls, size_t n, tally_t *t)
{
    size_t to_replay = 0;
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action == REPLAY)
            to_replay++;
        else
            t->skipped[ls[i].action]++;
    }
    if (to_replay == 0)
        return 0;
    /* Kafka first: while no broker answers, nothing is reopened. */
    ns_error_t err;
    ns_error_clear(&err);
    rd_kafka_t *rk = ns_kafka_producer_new(cfg, on_delivery, &err);
    if (rk == NULL) {
        fprintf(stderr, "nightshift dlq replay: %s\n", err.msg);
        t->aborted = true;
        return 1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr,
                "nightshift dlq replay: no Kafka broker answers (%s): %s; "
                "nothing changed\n",
                cfg->kafka_brokers, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        t->aborted = true;
        return 1;
    }
    rd_kafka_metadata_destroy(md);
    if (!reopen(pg, r, ls, n, t)) {
        rd_kafka_destroy(rk);
        t->aborted = true;
        return 1;
    }
    produce_all(rk, r, ls, n);
    rd_kafka_destroy(rk);
    mark_replayed(pg, r, ls, n, t);
    if (t->failed > 0)
        fprintf(stderr,
                "nightshift dlq replay: %d not delivered; their items are "
                "pending, replay them again\n",
                t->failed);
    return t->failed > 0 ? 1 : 0;
}

int ns_dlq_replay(const ns_config_t *cfg, const ns_dlq_filter_t *f,
                  bool dry_run, FILE *out)
{
    if (!f->job && !f->item && !f->since && !f->id) {
        fprintf(stderr, "nightshift dlq replay: say what to replay: --job, "
                        "--item, --since or --id\n");
        return 2;
    }
    dlq_query_t q = {.n = 0};
    ns_buf_init(&q.sql, SQL_MAX);
    ns_buf_adds(&q.sql, ROW_COLUMNS DETAIL_COLUMNS);
    int rc = dlq_add_where(&q, f, "replay");
    if (rc != 0) {
        ns_buf_free(&q.sql);
        return rc;
    }
    ns_buf_adds(&q.sql, " ORDER BY d.id");
    PGconn *pg = dlq_connect_pg(cfg, "replay");
    PGresult *r = pg ? dlq_run_query(pg, &q, "replay") : NULL;
    ns_buf_free(&q.sql);
    if (r == NULL) {
        PQfinish(pg);
        return 1;
    }
    size_t n = (size_t)PQntuples(r);
    letter_t *ls = calloc(n + 1, sizeof(*ls));
    if (ls == NULL) {
        fprintf(stderr, "nightshift dlq replay: out of memory\n");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ls[i].row = (int)i;
        plan(cfg, r, f->id != NULL, &ls[i]);
        ls[i].key = dlq_unescape(r, (int)i, C_KEY, &ls[i].key_len);
        ls[i].payload = dlq_unescape(r, (int)i, C_PAYLOAD, &ls[i].len);
    }
    if (n == 0) {
        fprintf(out, "no dead letters match\n");
        goto done;
    }
    tally_t t = {0};
    if (dry_run)
        tally_plan(r, ls, n, &t);
    else
        rc = execute(cfg, pg, r, ls, n, &t);
    for (size_t i = 0; i < n && !t.aborted; i++)
        print_line(out, r, &ls[i], dry_run);
    if (!t.aborted)
        print_summary(out, &t, dry_run);
done:
    for (size_t i = 0; ls != NULL && i < n; i++) {
        PQfreemem(ls[i].key);
        PQfreemem(ls[i].payload);
    }
    free(ls);
    PQclear(r);
    PQfinish(pg);
    return rc;
}
