/* structure.c: structure.message (seed 002, the nightly structuring).
 * One item = one raw message (ordered per chat: source order_key). The
 * structurer classifies it and extracts its fields as JSON {"type",
 * "data"}: an OpenAI-compatible chat-completions endpoint asked for
 * structured output (response_format json_schema), or the seed's webhook
 * (POST JSON, JSON answer) — params.structurer. The answer is validated
 * against schemas/structure (compiled into the binary); an invalid one
 * gets one repair request, then the item fails with the reason (retried,
 * then dead-lettered, like any item). In one transaction the typed row is
 * written (events, tasks, notes, questions, files), the raw message marked
 * processed with its type, row and structurer version — and, when a
 * message structured before now gets another type (a re-structuring after
 * a prompt or model change, or an edit), its old row moves: deleted from
 * the old table, written to the new one, recorded whole in
 * structuring_moves.
 * Params: structurer ("llm" | "webhook"), webhook_url, version (recorded
 * with every row; default "llm:<model>" / "webhook"), rate_limit (the
 * shared limit taken per request; default "structurer"),
 * timeout_seconds (webhook; default 30). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "ns/embedded.h"
#include "ns/http.h"
#include "ns/jsonschema.h"
#include "ns/llm.h"
#include "ns/log.h"
#include "ns/pg.h"

/* The types, their tables and schema files, in one place. */
static const struct kind {
    const char *type, *table, *schema;
} KINDS[] = {
    {"event", "events", "event.json"},
    {"task", "tasks", "task.json"},
    {"note", "notes", "note.json"},
    {"question", "questions", "question.json"},
    {"file", "files", "file.json"},
};
#define N_KINDS (sizeof(KINDS) / sizeof(KINDS[0]))

static const struct kind *kind_of(const char *type)
{
    for (size_t i = 0; type != NULL && i < N_KINDS; i++)
        if (strcmp(KINDS[i].type, type) == 0)
            return &KINDS[i];
    return NULL;
}

/* ---- the schemas, compiled once per process ---------------------------- */

static pthread_mutex_t schemas_lock = PTHREAD_MUTEX_INITIALIZER;
static ns_jsonschema_t *answer_schema, *kind_schema[N_KINDS];
/* What response_format carries: the answer schema without the keywords
 * strict structured outputs refuse (length bounds); they are checked
 * here, on the answer, all the same. */
static cJSON *wire_schema;

static void strip_lengths(cJSON *node)
{
    if (cJSON_IsObject(node)) {
        cJSON_DeleteItemFromObjectCaseSensitive(node, "minLength");
        cJSON_DeleteItemFromObjectCaseSensitive(node, "maxLength");
    }
    for (cJSON *c = node ? node->child : NULL; c != NULL; c = c->next)
        strip_lengths(c);
}
static char schemas_error[600];

/* The .json files of schemas/structure, compiled in (CMakeLists.txt). */
extern const ns_embedded_file_t ns_structure_schemas[];
extern const int ns_structure_schemas_count;

static ns_jsonschema_t *compile(const char *name)
{
    const char *text = ns_embedded_find(ns_structure_schemas,
                                        ns_structure_schemas_count, name);
    cJSON *json = text ? cJSON_Parse(text) : NULL;
    ns_error_t err;
    ns_error_clear(&err);
    ns_jsonschema_t *s = json ? ns_jsonschema_new(json, &err) : NULL;
    cJSON_Delete(json);
    if (s == NULL && schemas_error[0] == '\0')
        snprintf(schemas_error, sizeof(schemas_error), "schema %s: %.500s",
                 name,
                 text == NULL   ? "not compiled into this binary"
                 : json == NULL ? "not JSON"
                                : err.msg);
    return s;
}

static ns_err_t schemas(ns_error_t *err)
{
    pthread_mutex_lock(&schemas_lock);
    if (answer_schema == NULL && schemas_error[0] == '\0') {
        answer_schema = compile("answer.json");
        for (size_t i = 0; i < N_KINDS; i++)
            kind_schema[i] = compile(KINDS[i].schema);
        if (answer_schema != NULL) {
            wire_schema = cJSON_Duplicate(ns_jsonschema_json(answer_schema), 1);
            strip_lengths(wire_schema);
        }
    }
    bool ok = schemas_error[0] == '\0';
    pthread_mutex_unlock(&schemas_lock);
    return ok ? NS_OK
              : ns_error_set(err, NS_ERR_PERMANENT, "structure.message: %s",
                             schemas_error);
}

/* ---- asking the structurer ---------------------------------------------- */

static const char *param_str(const cJSON *params, const char *key,
                             const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : dflt;
}

static const char *pstr(const cJSON *payload, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define SYSTEM_PROMPT                                                          \
    "You structure chat messages. Classify the message as one of: event "      \
    "(something happening at a time), task (something to do), question, "      \
    "file (a document or media to keep) or note (anything else), and "         \
    "extract its fields. Answer only with JSON matching the schema: "          \
    "{\"type\": ..., \"data\": {...}}."

static char *user_turn(const cJSON *payload)
{
    const char *text = pstr(payload, "message_text");
    const char *reply = pstr(payload, "reply_to_text");
    size_t n = (text ? strlen(text) : 0) + (reply ? strlen(reply) : 0) + 200;
    char *out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "Type: %s\nReply to: %s\nMessage:\n%s",
                 pstr(payload, "message_type") ? pstr(payload, "message_type")
                                               : "text",
                 reply ? reply : "(none)", text ? text : "");
    return out;
}

/* One request: the answer's text in *answer (malloc'd). previous/why: the
 * bad answer being repaired, or NULL. */
static ns_err_t ask(ns_item_ctx_t *ctx, const char *previous, const char *why,
                    char **answer, ns_error_t *err)
{
    const ns_job_t *job = ns_item_job(ctx);
    const cJSON *payload = ns_item_payload(ctx);
    *answer = NULL;
    ns_err_t rc = ns_item_rate_limit(
        ctx, param_str(job->params, "rate_limit", "structurer"), err);
    if (rc != NS_OK)
        return rc;
    char *user = user_turn(payload);
    if (user == NULL)
        return ns_error_set(err, NS_ERR_TRANSIENT, "out of memory");
    char repair[1200] = "";
    if (why != NULL)
        snprintf(repair, sizeof(repair),
                 "Your answer did not match the schema: %s. Answer again, "
                 "with JSON only.",
                 why);
    if (strcmp(param_str(job->params, "structurer", "llm"), "webhook") != 0) {
        const char *turns[] = {user, previous, repair};
        ns_llm_request_t rq = {.system = SYSTEM_PROMPT,
                               .turns = turns,
                               .n_turns = why ? 3 : 1,
                               .json_schema = wire_schema,
                               .schema_name = "structured_message"};
        ns_llm_result_t res;
        rc = ns_llm_chat_ex(&ns_item_config(ctx)->llm, &rq, &res, err);
        if (rc == NS_OK) {
            *answer = res.content;
            res.content = NULL;
        }
        ns_llm_result_free(&res);
        free(user);
        return rc;
    }
    free(user);
    /* The seed's webhook: the message's fields in, {type, data} out. */
    const char *url = param_str(job->params, "webhook_url", NULL);
    if (url == NULL)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "structure.message: params.webhook_url is not "
                            "set");
    cJSON *body = cJSON_CreateObject();
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(payload, "user_id");
    cJSON_AddStringToObject(
        body, "message",
        pstr(payload, "message_text") ? pstr(payload, "message_text") : "");
    cJSON_AddStringToObject(
        body, "message_type",
        pstr(payload, "message_type") ? pstr(payload, "message_type") : "text");
    cJSON_AddNumberToObject(body, "user_id",
                            cJSON_IsNumber(uid) ? uid->valuedouble : 0);
    if (pstr(payload, "reply_to_text") != NULL)
        cJSON_AddStringToObject(body, "reply_to_message",
                                pstr(payload, "reply_to_text"));
    else
        cJSON_AddNullToObject(body, "reply_to_message");
    cJSON_AddBoolToObject(body, "is_clarification",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                              payload, "is_clarification")));
    if (why != NULL) {
        cJSON *r = cJSON_AddObjectToObject(body, "repair");
        cJSON_AddStringToObject(r, "previous", previous ? previous : "");
        cJSON_AddStringToObject(r, "error", why);
    }
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    const char *headers[] = {"Content-Type: application/json",
                             "Accept: application/json", NULL};
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(job->params, "timeout_seconds");
    ns_http_req_t req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = json,
        .body_len = json ? strlen(json) : 0,
        .timeout_ms = cJSON_IsNumber(t) ? (long)(t->valuedouble * 1000) : 30000,
        .max_response = 1 << 20};
    ns_http_resp_t resp;
    rc = json ? ns_http_do(&req, &resp, err)
              : ns_error_set(err, NS_ERR_TRANSIENT, "out of memory");
    free(json);
    if (rc != NS_OK)
        return rc;
    rc = ns_http_classify(resp.status);
    if (rc != NS_OK) {
        ns_error_set(err, rc, "structurer webhook: HTTP %ld", resp.status);
        err->http_status = resp.status;
        err->retry_after_s = resp.retry_after_s;
    } else {
        *answer = resp.body;
        resp.body = NULL;
    }
    ns_http_resp_free(&resp);
    return rc;
}

/* The answer as {type, data}, checked; else why not (in why). */
static cJSON *check_answer(const char *text, const struct kind **k, char *why,
                           size_t cap)
{
    cJSON *a = text ? cJSON_Parse(text) : NULL;
    ns_error_t err;
    ns_error_clear(&err);
    if (a == NULL) {
        snprintf(why, cap, "the answer is not JSON");
        return NULL;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(a, "type");
    *k = kind_of(cJSON_IsString(type) ? type->valuestring : NULL);
    /* The data against its type's schema first: the clearest reason. */
    if (cJSON_IsString(type) && *k == NULL)
        snprintf(why, cap, "unknown type \"%.100s\"", type->valuestring);
    else if (*k != NULL &&
             ns_jsonschema_validate(kind_schema[*k - KINDS],
                                    cJSON_GetObjectItemCaseSensitive(a, "data"),
                                    &err) != NS_OK)
        snprintf(why, cap, "data of a %s: %s", (*k)->type, err.msg);
    else if (ns_jsonschema_validate(answer_schema, a, &err) != NS_OK)
        snprintf(why, cap, "%s", err.msg);
    else
        return a;
    cJSON_Delete(a);
    return NULL;
}

/* ---- writing ------------------------------------------------------------- */

static const char *field(const cJSON *data, const char *key, char *buf,
                         size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.17g", v->valuedouble);
        return buf;
    }
    return NULL;
}

/* The typed row (an upsert: a message keeps one row per table). */
static ns_err_t write_row(PGconn *tx, const struct kind *k, const char *raw_id,
                          const char *user, const char *version,
                          const cJSON *data, char id[24], ns_error_t *err)
{
    static const struct {
        const char *sql;
        const char *fields[4];
    } ROWS[] = {
        {"INSERT INTO events (raw_message_id, user_id, structurer_version, "
         "title, starts_at, ends_at, location) VALUES ($1, $2, $3, $4, "
         "$5::timestamptz, $6::timestamptz, $7) ON CONFLICT (raw_message_id) "
         "DO UPDATE SET title = EXCLUDED.title, starts_at = "
         "EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, location = "
         "EXCLUDED.location, structurer_version = "
         "EXCLUDED.structurer_version RETURNING id",
         {"title", "starts_at", "ends_at", "location"}},
        {"INSERT INTO tasks (raw_message_id, user_id, structurer_version, "
         "title, due_at, priority, done) VALUES ($1, $2, $3, $4, "
         "$5::timestamptz, $6, $7::boolean) ON CONFLICT (raw_message_id) DO "
         "UPDATE SET title = EXCLUDED.title, due_at = EXCLUDED.due_at, "
         "priority = EXCLUDED.priority, done = EXCLUDED.done, "
         "structurer_version = EXCLUDED.structurer_version RETURNING id",
         {"title", "due_at", "priority", "done"}},
        {"INSERT INTO notes (raw_message_id, user_id, structurer_version, "
         "title, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
         "(raw_message_id) DO UPDATE SET title = EXCLUDED.title, body = "
         "EXCLUDED.body, structurer_version = EXCLUDED.structurer_version "
         "RETURNING id",
         {"title", "body"}},
        {"INSERT INTO questions (raw_message_id, user_id, structurer_version, "
         "question, topic) VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
         "(raw_message_id) DO UPDATE SET question = EXCLUDED.question, topic "
         "= EXCLUDED.topic, structurer_version = EXCLUDED.structurer_version "
         "RETURNING id",
         {"question", "topic"}},
        {"INSERT INTO files (raw_message_id, user_id, structurer_version, "
         "description, raw_file_id) VALUES ($1, $2, $3, $4, (SELECT file_id "
         "FROM raw_messages WHERE id = $1::bigint)) ON CONFLICT "
         "(raw_message_id) DO UPDATE SET description = EXCLUDED.description, "
         "raw_file_id = EXCLUDED.raw_file_id, structurer_version = "
         "EXCLUDED.structurer_version RETURNING id",
         {"description"}},
    };
    size_t i = (size_t)(k - KINDS);
    char bufs[4][32];
    const char *params[7] = {raw_id, user, version};
    int n = 3;
    for (int f = 0; f < 4 && ROWS[i].fields[f] != NULL; f++, n++)
        params[n] = field(data, ROWS[i].fields[f], bufs[f], sizeof(bufs[f]));
    PGresult *r = ns_pg_query(tx, ROWS[i].sql, n, params, err);
    if (r == NULL)
        return err->code;
    snprintf(id, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return NS_OK;
}

/* The raw message's structured state now (locked in the transaction). */
typedef struct state {
    char user[24], type[32], id[24];
} state_t;

static ns_err_t read_state(PGconn *pg, const char *raw_id, bool lock,
                           state_t *st, ns_error_t *err)
{
    const char *params[] = {raw_id};
    PGresult *r = ns_pg_query(
        pg,
        lock ? "SELECT user_id, coalesce(structured_type, ''), "
               "coalesce(structured_id, 0) FROM raw_messages WHERE id = "
               "$1::bigint FOR UPDATE"
             : "SELECT user_id, coalesce(structured_type, ''), "
               "coalesce(structured_id, 0) FROM raw_messages WHERE id = "
               "$1::bigint",
        1, params, err);
    if (r == NULL)
        return err->code;
    bool found = PQntuples(r) == 1;
    if (found) {
        snprintf(st->user, sizeof(st->user), "%s", PQgetvalue(r, 0, 0));
        snprintf(st->type, sizeof(st->type), "%s", PQgetvalue(r, 0, 1));
        snprintf(st->id, sizeof(st->id), "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    return found ? NS_OK
                 : ns_error_set(err, NS_ERR_PERMANENT, "raw message %s is gone",
                                raw_id);
}

/* The old row leaves its table with a trace: structuring_moves keeps it
 * whole. */
static ns_err_t move_out(ns_item_ctx_t *ctx, PGconn *tx, const char *raw_id,
                         const state_t *st, const struct kind *to,
                         const char *to_id, const char *version,
                         ns_error_t *err)
{
    const struct kind *from = kind_of(st->type);
    if (from == NULL)
        return NS_OK;
    char sql[300], run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s t WHERE id = $1::bigint RETURNING to_jsonb(t)",
             from->table);
    const char *p1[] = {st->id};
    PGresult *r = ns_pg_query(tx, sql, 1, p1, err);
    if (r == NULL)
        return err->code;
    ns_err_t rc = NS_OK;
    if (PQntuples(r) == 1) {
        const char *p2[] = {
            raw_id,   run,   from->type, st->id, PQgetvalue(r, 0, 0),
            to->type, to_id, version};
        rc = ns_pg_exec(tx,
                        "INSERT INTO structuring_moves (raw_message_id, "
                        "run_id, from_type, from_id, from_row, to_type, "
                        "to_id, structurer_version) VALUES ($1, $2, $3, $4, "
                        "$5::jsonb, $6, $7, $8)",
                        8, p2, err);
    }
    PQclear(r);
    return rc;
}

/* A message with nothing to structure: processed, no typed row. */
static ns_err_t mark_unstructured(ns_item_ctx_t *ctx, const char *raw_id,
                                  ns_error_t *err)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "raw_message_id", raw_id);
    ns_item_report(ctx, "nothing to structure (no text)", d);
    if (ns_item_dry_run(ctx))
        return NS_OK;
    PGconn *tx = ns_item_tx(ctx, err);
    const char *params[] = {raw_id};
    return tx == NULL ? err->code
                      : ns_pg_exec(tx,
                                   "UPDATE raw_messages SET is_processed = "
                                   "true, processed_at = now() WHERE id = "
                                   "$1::bigint",
                                   1, params, err);
}

ns_err_t ns_structure_message(ns_item_ctx_t *ctx, ns_error_t *err)
{
    if (schemas(err) != NS_OK)
        return err->code;
    const ns_job_t *job = ns_item_job(ctx);
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(ns_item_payload(ctx), "id");
    if (!cJSON_IsNumber(id))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: the item has no raw message id");
    char raw_id[24];
    snprintf(raw_id, sizeof(raw_id), "%.0f", id->valuedouble);
    /* Nothing to classify without text: a file stays a file, the rest
     * (stickers, locations, ...) is kept raw only. */
    char *answer = NULL, why[600] = "";
    const struct kind *k = NULL;
    cJSON *a = NULL;
    const char *text = pstr(ns_item_payload(ctx), "message_text");
    if (text == NULL || text[strspn(text, " \t\r\n")] == '\0') {
        const cJSON *file =
            cJSON_GetObjectItemCaseSensitive(ns_item_payload(ctx), "file_id");
        if (!cJSON_IsNumber(file))
            return mark_unstructured(ctx, raw_id, err);
        char desc[120];
        snprintf(desc, sizeof(desc), "%s without a caption",
                 pstr(ns_item_payload(ctx), "message_type")
                     ? pstr(ns_item_payload(ctx), "message_type")
                     : "file");
        a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "type", "file");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(a, "data"),
                                "description", desc);
        k = kind_of("file");
    }
    for (int round = 0; round < 2 && a == NULL; round++) {
        char *prev = answer;
        ns_err_t rc = ask(ctx, prev, round ? why : NULL, &answer, err);
        free(prev);
        if (rc != NS_OK)
            return rc;
        a = check_answer(answer, &k, why, sizeof(why));
    }
    free(answer);
    if (a == NULL)
        return ns_error_set(err, NS_ERR_TRANSIENT,
                            "structurer answer rejected after one repair: %s",
                            why);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(a, "data");
    /* Recorded with every row: params.version, else what answered. */
    char version[160];
    const char *model = ns_item_config(ctx)->llm.model;
    if (param_str(job->params, "version", NULL) != NULL)
        snprintf(version, sizeof(version), "%s",
                 param_str(job->params, "version", NULL));
    else if (strcmp(param_str(job->params, "structurer", "llm"), "webhook") ==
             0)
        snprintf(version, sizeof(version), "webhook");
    else
        snprintf(version, sizeof(version), "llm:%s", model ? model : "");
    state_t st;
    ns_err_t rc;
    if (ns_item_dry_run(ctx)) {
        PGconn *pg = ns_item_pg(ctx, err);
        rc = pg ? read_state(pg, raw_id, false, &st, err) : err->code;
        if (rc == NS_OK) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "raw_message_id", raw_id);
            cJSON_AddStringToObject(d, "type", k->type);
            cJSON_AddItemToObject(d, "data", cJSON_Duplicate(data, 1));
            if (st.type[0] != '\0' && strcmp(st.type, k->type) != 0)
                cJSON_AddStringToObject(d, "moved_from", st.type);
            ns_item_report(ctx,
                           st.type[0] == '\0'              ? "would create"
                           : strcmp(st.type, k->type) == 0 ? "would update"
                                                           : "would move",
                           d);
        }
        cJSON_Delete(a);
        return rc;
    }
    PGconn *tx = ns_item_tx(ctx, err);
    char row[24];
    rc = tx ? read_state(tx, raw_id, true, &st, err) : err->code;
    bool moving =
        rc == NS_OK && st.type[0] != '\0' && strcmp(st.type, k->type) != 0;
    if (rc == NS_OK)
        rc = write_row(tx, k, raw_id, st.user, version, data, row, err);
    if (rc == NS_OK && moving)
        rc = move_out(ctx, tx, raw_id, &st, k, row, version, err);
    const char *params[] = {raw_id, k->type, row, version};
    if (rc == NS_OK)
        rc = ns_pg_exec(tx,
                        "UPDATE raw_messages SET is_processed = true, "
                        "processed_at = now(), structured_type = $2, "
                        "structured_id = $3, structurer_version = $4 WHERE "
                        "id = $1::bigint",
                        4, params, err);
    if (rc == NS_OK) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", k->type);
        cJSON_AddStringToObject(d, "id", row);
        if (moving)
            cJSON_AddStringToObject(d, "moved_from", st.type);
        ns_item_report(ctx, moving ? "moved" : "structured", d);
    }
    cJSON_Delete(a);
    return rc;
}
