/* The stopword refresh job (seed 004).
 *
 * `stopwords.count` (an item = a shard, an id range of the documents
 * table): reads the shard with COPY, tokenizes and counts per-language term
 * statistics (text/termstats.c), and stores the encoded partial,
 * keyed by (job, shard, run), in the item's transaction. A resumed run
 * skips the shards already counted: their items are done.
 *
 * `stopwords.merge` (the finalizer): totals = previous totals − the
 * replaced partials of the shards counted in this run + their new ones, so
 * an incremental run touches only what changed and ends exactly where a
 * full run would. It rewrites the per-term table and moves the job's
 * watermark. A run with failed shards merges nothing: the current totals
 * stay. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/langdetect.h"
#include "ns/log.h"
#include "ns/metrics.h"
#include "ns/pg.h"
#include "ns/redis.h"
#include "ns/stopscore.h"
#include "ns/stopsets.h"
#include "ns/termstats.h"
#include "ns/text.h"

/* ---- COPY text format --------------------------------------------------- */

/* Decodes one COPY text field in place (backslash escapes); returns its
 * length. */
static size_t copy_unescape(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\' || i + 1 == len) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'b': s[o++] = '\b'; break;
        case 'f': s[o++] = '\f'; break;
        case 'n': s[o++] = '\n'; break;
        case 'r': s[o++] = '\r'; break;
        case 't': s[o++] = '\t'; break;
        case 'v': s[o++] = '\v'; break;
        case 'x': {
            int v = 0, k = 0;
            while (k < 2 && i + 1 < len &&
                   strchr("0123456789abcdefABCDEF", s[i + 1]) != NULL) {
                char h = s[++i];
                v = v * 16 + (h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
                k++;
            }
            s[o++] = (char)v;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                int v = c - '0', k = 1;
                while (k < 3 && i + 1 < len && s[i + 1] >= '0' &&
                       s[i + 1] <= '7') {
                    v = v * 8 + (s[++i] - '0');
                    k++;
                }
                s[o++] = (char)v;
            } else {
                s[o++] = c; /* \\ and any other escaped character */
            }
        }
    }
    return o;
}

typedef struct shard_count {
    ns_termstats_t *stats;
    ns_tokenizer_t *tok;
    ns_text_stats_t text;
    ns_langdetect_t *detect; /* loaded at the first document without one */
    int64_t docs, bytes, lang_missing, lang_detected;
    ns_error_t *err;
    ns_err_t rc;
} shard_count_t;

static void on_word(const char *w, size_t n, void *arg)
{
    shard_count_t *sc = arg;
    if (sc->rc == NS_OK)
        sc->rc = ns_termstats_word(sc->stats, w, n, sc->err);
}

/* One COPY row: "lang\tbody\n" (lang may be \N). */
static void count_row(shard_count_t *sc, char *row, size_t len)
{
    if (len > 0 && row[len - 1] == '\n')
        len--;
    char *tab = memchr(row, '\t', len);
    if (tab == NULL)
        return;
    char lang[32] = "";
    size_t lang_len = (size_t)(tab - row);
    if (lang_len == 2 && memcmp(row, "\\N", 2) == 0) {
        sc->lang_missing++;
    } else {
        lang_len = copy_unescape(row, lang_len);
        if (lang_len >= sizeof(lang))
            lang_len = sizeof(lang) - 1;
        memcpy(lang, row, lang_len);
        lang[lang_len] = '\0';
    }
    char *body = tab + 1;
    size_t body_len = copy_unescape(body, len - (size_t)(body - row));
    if (lang[0] == '\0' && sc->rc == NS_OK) {
        if (sc->detect == NULL)
            sc->detect = ns_langdetect_new(sc->err);
        if (sc->detect == NULL)
            sc->rc = sc->err->code;
        else if (ns_langdetect(sc->detect, body, body_len, lang, sizeof(lang)))
            sc->lang_detected++;
    }
    sc->docs++;
    sc->bytes += (int64_t)body_len;
    if (sc->rc == NS_OK)
        sc->rc = ns_termstats_doc_begin(sc->stats, lang, sc->err);
    if (sc->rc == NS_OK)
        sc->rc = ns_tokenize(sc->tok, lang, body, body_len, on_word, sc,
                             &sc->text, sc->err);
    if (sc->rc == NS_OK)
        sc->rc = ns_termstats_doc_end(sc->stats, sc->err);
}

/* Reads the shard's live documents with COPY and counts them. */
static ns_err_t count_shard(PGconn *pg, const char *table, int64_t first,
                            int64_t last, shard_count_t *sc, ns_error_t *err)
{
    char *ident = PQescapeIdentifier(pg, table, strlen(table));
    if (ident == NULL)
        return ns_error_set(err, NS_ERR_TRANSIENT, "stopwords.count: %s",
                            PQerrorMessage(pg));
    char sql[512];
    snprintf(sql, sizeof(sql),
             "COPY (SELECT lang, body FROM %s WHERE id BETWEEN %lld AND %lld "
             "AND NOT deleted) TO STDOUT",
             ident, (long long)first, (long long)last);
    PQfreemem(ident);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        ns_error_set(err,
                     PQstatus(pg) == CONNECTION_OK ? NS_ERR_PERMANENT
                                                   : NS_ERR_TRANSIENT,
                     "stopwords.count: %s", PQerrorMessage(pg));
        PQclear(r);
        return err->code;
    }
    PQclear(r);
    char *row;
    int n;
    while ((n = PQgetCopyData(pg, &row, 0)) > 0) {
        count_row(sc, row, (size_t)n);
        PQfreemem(row);
    }
    r = PQgetResult(pg);
    ns_err_t rc = NS_OK;
    if (n == -2 || PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "stopwords.count: COPY: %s",
                          PQerrorMessage(pg));
    PQclear(r);
    while ((r = PQgetResult(pg)) != NULL)
        PQclear(r);
    return rc != NS_OK ? rc : sc->rc;
}

/* An integer of the payload (ids may be negative). */
static bool payload_int(const ns_item_ctx_t *ctx, const char *name,
                        int64_t *out)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(ns_item_payload(ctx), name);
    if (!cJSON_IsNumber(v))
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

ns_err_t ns_stopwords_count(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const ns_job_t *job = ns_item_job(ctx);
    int64_t shard = 0, first = 0, last = -1;
    if (!payload_int(ctx, "shard", &shard) ||
        !payload_int(ctx, "first_id", &first) ||
        !payload_int(ctx, "last_id", &last) || last < first)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "stopwords.count: the payload has no valid "
                            "shard, first_id and last_id");
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL)
        return err->code;
    shard_count_t sc = {.stats = ns_termstats_new(),
                        .tok = ns_tokenizer_new(err),
                        .err = err,
                        .rc = NS_OK};
    ns_err_t rc = sc.stats == NULL || sc.tok == NULL
                      ? ns_error_set(err, NS_ERR_NOMEM, "out of memory")
                      : count_shard(pg, ns_source_table(&job->source), first,
                                    last, &sc, err);
    char *data = NULL;
    size_t len = 0;
    if (rc == NS_OK)
        rc = ns_termstats_encode(sc.stats, &data, &len, err);
    size_t terms = sc.stats ? ns_termstats_terms(sc.stats) : 0;
    ns_termstats_destroy(sc.stats);
    ns_tokenizer_destroy(sc.tok);
    ns_langdetect_destroy(sc.detect);
    if (rc != NS_OK) {
        free(data);
        return rc;
    }
    if (ns_item_dry_run(ctx)) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "shard", (double)shard);
        cJSON_AddNumberToObject(d, "documents", (double)sc.docs);
        cJSON_AddNumberToObject(d, "terms", (double)terms);
        ns_item_report(ctx, "count shard", d);
    }
    /* A dry run's partial is scratch under its own run id: its merge
     * reads it, computes what would change, and deletes it. */
    PGconn *tx = ns_item_scratch_tx(ctx, err);
    if (tx == NULL) {
        free(data);
        return err->code;
    }
    char run[24], sh[24], docs[24], bytes[24], words[24], missing[24],
        detected[24], invalid[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    ns_pg_i64str(shard, sh);
    ns_pg_i64str(sc.docs, docs);
    ns_pg_i64str(sc.bytes, bytes);
    ns_pg_i64str((int64_t)sc.text.words, words);
    ns_pg_i64str(sc.lang_missing, missing);
    ns_pg_i64str(sc.lang_detected, detected);
    ns_pg_i64str((int64_t)sc.text.invalid_bytes, invalid);
    const char *params[] = {job->name, sh,      run,      docs,    bytes,
                            words,     missing, detected, invalid, data};
    int lengths[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, (int)len};
    int formats[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    PGresult *r = PQexecParams(
        tx,
        "INSERT INTO stopword_partials (job, shard, run_id, docs, bytes, "
        "words, lang_missing, lang_detected, invalid_bytes, data) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (job, shard, "
        "run_id) DO UPDATE SET docs = EXCLUDED.docs, bytes = EXCLUDED.bytes, "
        "words = EXCLUDED.words, lang_missing = EXCLUDED.lang_missing, "
        "lang_detected = EXCLUDED.lang_detected, invalid_bytes = "
        "EXCLUDED.invalid_bytes, data = EXCLUDED.data",
        10, NULL, params, lengths, formats, 0);
    free(data);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK
             ? NS_OK
             : ns_error_set(err, NS_ERR_TRANSIENT, "stopwords.count: %s",
                            PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

/* ---- the merge ---------------------------------------------------------- */

/* totals += sign * the partial in a bytea column of a binary-format
 * result. */
static ns_err_t merge_col(ns_termstats_t *totals, PGresult *r, int row, int col,
                          int sign, ns_error_t *err)
{
    return ns_termstats_merge_encoded(totals, PQgetvalue(r, row, col),
                                      (size_t)PQgetlength(r, row, col), sign,
                                      err);
}

/* Prefixes err's message (which must not be an argument of its own
 * ns_error_set). */
static ns_err_t fail_with(ns_error_t *err, const char *what)
{
    char why[sizeof(err->msg)];
    snprintf(why, sizeof(why), "%s", err->msg);
    return ns_error_set(err, NS_ERR_PERMANENT, "stopwords.merge: %s: %s", what,
                        why);
}

/* totals += the partials of the n rows of r (shard, new partial, the
 * partial it replaces or NULL), straight from their binary form: the old
 * one out, the new one in. */
static ns_err_t merge_rows(ns_termstats_t *totals, PGresult *r, int n,
                           ns_error_t *err)
{
    for (int i = 0; i < n; i++) {
        bool had_old = !PQgetisnull(r, i, 2);
        if ((had_old && merge_col(totals, r, i, 2, -1, err) != NS_OK) ||
            merge_col(totals, r, i, 1, 1, err) != NS_OK) {
            char what[64];
            snprintf(what, sizeof(what), "shard %s", PQgetvalue(r, i, 0));
            return fail_with(err, what);
        }
    }
    return NS_OK;
}

typedef struct copy_out {
    PGconn *pg;
    const char *job;
    int64_t min_df;
    ns_buf_t line;
    bool failed;
} copy_out_t;

static void copy_flush(copy_out_t *c)
{
    if (!c->failed && c->line.len > 0)
        c->failed = PQputCopyData(c->pg, c->line.data, (int)c->line.len) != 1;
    ns_buf_reset(&c->line);
}

static void copy_term(const ns_term_t *t, void *arg)
{
    copy_out_t *c = arg;
    if (c->failed || t->df < c->min_df)
        return;
    ns_pg_copy_field(&c->line, c->job, strlen(c->job));
    ns_buf_add(&c->line, "\t", 1);
    ns_pg_copy_field(&c->line, t->lang, strlen(t->lang));
    ns_buf_add(&c->line, "\t", 1);
    ns_pg_copy_field(&c->line, t->term, strlen(t->term));
    ns_buf_addf(&c->line, "\t%lld\t%lld\t%lld\n", (long long)t->df,
                (long long)t->count, (long long)t->nlogn);
    if (c->line.len >= 1 << 16)
        copy_flush(c);
}

/* Replaces the job's rows of stopword_terms with the totals' terms found
 * in at least min_df documents (params.terms_min_df, default 2: the words
 * seen once are most of a vocabulary and say nothing per term; they stay
 * in the encoded totals). The rows go into a fresh table (COPY FREEZE,
 * then one index build), which replaces the job's partition: ten times
 * faster than a million deletes and inserts through the unique index, and
 * no dead rows. Readers wait only from the swap to the commit. The table
 * is made and swapped in by functions owned by the schema's owner
 * (migration 013): the worker's role changes rows, never the schema. */
static ns_err_t write_terms(PGconn *tx, const char *job, int64_t min_df,
                            const ns_termstats_view_t *sorted, ns_error_t *err)
{
    const char *params[] = {job};
    PGresult *r =
        ns_pg_query(tx, "SELECT ns_stopword_terms_stage($1)", 1, params, err);
    if (r == NULL)
        return err->code;
    char *fresh = PQescapeIdentifier(tx, PQgetvalue(r, 0, 0),
                                     strlen(PQgetvalue(r, 0, 0)));
    PQclear(r);
    if (fresh == NULL)
        return ns_error_set(err, NS_ERR_TRANSIENT, "stopwords.merge: %s",
                            PQerrorMessage(tx));
    char sql[200];
    snprintf(sql, sizeof(sql),
             "COPY %s (job, lang, term, df, count, nlogn) FROM STDIN "
             "WITH (FREEZE)",
             fresh);
    PQfreemem(fresh);
    ns_err_t rc = NS_OK;
    r = PQexec(tx, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "stopwords.merge: %s",
                          PQerrorMessage(tx));
    PQclear(r);
    if (rc == NS_OK) {
        copy_out_t c = {.pg = tx, .job = job, .min_df = min_df};
        ns_buf_init(&c.line, 1 << 17);
        /* In key order: the index is then built from sorted input,
         * three times faster than from hash order. */
        ns_termstats_view_each(sorted, copy_term, &c);
        copy_flush(&c);
        ns_buf_free(&c.line);
        PQputCopyEnd(tx, c.failed ? "client failed" : NULL);
        r = PQgetResult(tx);
        if (c.failed || PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = ns_error_set(err, NS_ERR_TRANSIENT,
                              "stopwords.merge: COPY terms: %s",
                              PQerrorMessage(tx));
        PQclear(r);
        while ((r = PQgetResult(tx)) != NULL)
            PQclear(r);
    }
    /* The index build sorts every row once: in memory, not in an
     * external merge on disk (64 MB, Postgres' default, holds ~600,000 of
     * them; the memory is taken only as the sort needs it, and only in
     * this transaction). */
    if (rc == NS_OK)
        rc = ns_pg_exec(tx, "SET LOCAL maintenance_work_mem = '256MB'", 0, NULL,
                        err);
    if (rc == NS_OK)
        rc = ns_pg_exec(tx, "SELECT ns_stopword_terms_publish($1)", 1, params,
                        err);
    return rc;
}

/* ---- the sets in Redis --------------------------------------------------- */

/* The Redis key prefix of the job's sets: params.redis_prefix, default
 * "stopwords" (stopwords:{lang}). */
static const char *set_prefix(const ns_job_t *job)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(job->params, "redis_prefix");
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring
                                                  : "stopwords";
}

/* The new sets and ranked lists, one per language, as
 * ns_stopwords_rank_all hands them over (terms point into the totals). */
typedef struct new_sets {
    ns_stopset_t *sets;
    size_t n, cap;
    cJSON *per_lang; /* the sets' sizes per language, for the report */
    cJSON *ranked;   /* the ranked lists' */
    bool failed;
} new_sets_t;

static void take_set(const char *lang, const ns_stopword_t *words,
                     size_t n_ranked, size_t n_set, void *arg)
{
    new_sets_t *ns = arg;
    if (n_set > 0)
        cJSON_AddNumberToObject(ns->per_lang, lang, (double)n_set);
    cJSON_AddNumberToObject(ns->ranked, lang, (double)n_ranked);
    if (ns->failed || n_ranked == 0)
        return;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        ns_stopset_t *g = realloc(ns->sets, cap * sizeof(*g));
        if (g == NULL) {
            ns->failed = true;
            return;
        }
        ns->sets = g;
        ns->cap = cap;
    }
    const char **w = malloc(n_ranked * sizeof(*w));
    double *sc = malloc(n_ranked * sizeof(*sc));
    if (w == NULL || sc == NULL) {
        free(w);
        free(sc);
        ns->failed = true;
        return;
    }
    for (size_t i = 0; i < n_ranked; i++) {
        w[i] = words[i].term;
        sc[i] = words[i].score;
    }
    ns->sets[ns->n++] = (ns_stopset_t){.lang = lang,
                                       .n = n_set,
                                       .n_ranked = n_ranked,
                                       .words = w,
                                       .scores = sc};
}

static double param_num(const cJSON *params, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool in_list(const char *const *list, size_t n, const char *w)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], w) == 0)
            return true;
    return false;
}

/* The candidates per language (params top_n, min_score, min_docs) and the
 * ranked lists (params.min_words, default 200). Documents without a
 * language count towards nothing here. */
static ns_stop_params_t stop_params(const cJSON *jp)
{
    int top_n = (int)param_num(jp, "top_n", 200);
    int min_words = (int)param_num(jp, "min_words", 200);
    return (ns_stop_params_t){.top_n = top_n < 1      ? 1
                                       : top_n > 4096 ? 4096
                                                      : top_n,
                              .min_score = param_num(jp, "min_score", 0.02),
                              .min_docs =
                                  (int64_t)param_num(jp, "min_docs", 100),
                              .min_words = min_words < 0      ? 0
                                           : min_words > 4096 ? 4096
                                                              : min_words};
}

/* The ranked lists and sets of every language (pure computation: it may
 * run on another thread while the tables are written). */
static ns_err_t rank_sets(const ns_termstats_t *totals,
                          const ns_stop_params_t *sp, new_sets_t *sets,
                          ns_error_t *err)
{
    sets->per_lang = cJSON_CreateObject();
    sets->ranked = cJSON_CreateObject();
    if (ns_stopwords_rank_all(totals, sp, take_set, sets, err) < 0)
        return err->code;
    if (sets->failed || sets->per_lang == NULL || sets->ranked == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    return NS_OK;
}

static void sets_free(new_sets_t *sets)
{
    for (size_t i = 0; i < sets->n; i++) {
        free((void *)sets->sets[i].words);
        free((void *)sets->sets[i].scores);
    }
    free(sets->sets);
    cJSON_Delete(sets->per_lang);
    cJSON_Delete(sets->ranked);
    *sets = (new_sets_t){0};
}

/* The ranked sets go to Redis as the new version, switched at once. A dry
 * run reports, per language, what would be added to and removed from the
 * set. */
static ns_err_t publish_sets(ns_item_ctx_t *ctx, new_sets_t *sets, bool dry,
                             ns_error_t *err)
{
    const ns_job_t *job = ns_item_job(ctx);
    ns_err_t rc = NS_OK;
    ns_stopset_t *out = sets->sets;
    size_t n_out = sets->n;
    const ns_config_t *cfg = ns_item_config(ctx);
    redisContext *redis = NULL;
    ns_redis_url_t url;
    if (rc == NS_OK && (cfg->redis_url == NULL || cfg->redis_url[0] == '\0'))
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "stopwords.merge: the sets go to Redis: set "
                          "NS_REDIS_URL");
    if (rc == NS_OK && ns_redis_url_parse(cfg->redis_url, &url, err) != NS_OK)
        rc = err->code;
    if (rc == NS_OK) {
        redis = ns_redis_connect(&url, "stopwords", 10000, err);
        if (redis == NULL)
            rc = err->code;
    }
    cJSON *report = cJSON_CreateObject();
    cJSON_AddItemToObject(report, "candidates", sets->per_lang);
    cJSON_AddItemToObject(report, "ranked", sets->ranked);
    sets->per_lang = sets->ranked = NULL; /* the report's now */
    if (rc == NS_OK && dry) {
        cJSON *changes = cJSON_AddObjectToObject(report, "changes");
        for (size_t i = 0; i < n_out && rc == NS_OK; i++) {
            char **cur = NULL;
            size_t n_cur = 0;
            if (ns_stopsets_current(redis, set_prefix(job), out[i].lang, &cur,
                                    &n_cur, err) != NS_OK) {
                rc = err->code;
                break;
            }
            cJSON *added = cJSON_CreateArray(), *removed = cJSON_CreateArray();
            for (size_t k = 0; k < out[i].n; k++)
                if (!in_list((const char *const *)cur, n_cur, out[i].words[k]))
                    cJSON_AddItemToArray(added,
                                         cJSON_CreateString(out[i].words[k]));
            for (size_t k = 0; k < n_cur; k++) {
                if (!in_list(out[i].words, out[i].n, cur[k]))
                    cJSON_AddItemToArray(removed, cJSON_CreateString(cur[k]));
                free(cur[k]);
            }
            free(cur);
            cJSON *l = cJSON_AddObjectToObject(changes, out[i].lang);
            cJSON_AddItemToObject(l, "added", added);
            cJSON_AddItemToObject(l, "removed", removed);
        }
    } else if (rc == NS_OK) {
        rc = ns_stopsets_publish(redis, set_prefix(job), out, n_out, err);
    }
    if (redis != NULL)
        redisFree(redis);
    ns_item_report(
        ctx, dry ? "would publish stopword sets" : "published stopword sets",
        report);
    if (rc == NS_OK)
        NS_INFO(ns_item_log(ctx), "stopword sets %s for %zu language(s)",
                dry ? "computed (dry run)" : "published", n_out);
    return rc;
}

/* The figures of the statistics now current: in the run's report and in
 * /metrics. Documents, bytes and detection are those of the partials in
 * the totals after this run (this run's shards replacing theirs). */
static ns_err_t run_figures(ns_item_ctx_t *ctx, PGconn *pg, const char *job,
                            const ns_termstats_t *totals, int shards,
                            ns_error_t *err)
{
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    const char *params[] = {job, run};
    PGresult *r = ns_pg_query(
        pg,
        "SELECT coalesce(sum(p.docs), 0), coalesce(sum(p.bytes), 0), "
        "coalesce(sum(p.lang_missing), 0), coalesce(sum(p.lang_detected), "
        "0), coalesce(sum(p.invalid_bytes), 0), count(*) FROM "
        "stopword_partials p WHERE p.job = $1 AND (p.run_id = $2::bigint OR "
        "(p.run_id = (SELECT s.run_id FROM stopword_shards s WHERE s.job = "
        "p.job AND s.shard = p.shard) AND NOT EXISTS (SELECT 1 FROM "
        "stopword_partials n WHERE n.job = p.job AND n.shard = p.shard AND "
        "n.run_id = $2::bigint)))",
        2, params, err);
    if (r == NULL)
        return err->code;
    double docs = (double)ns_pg_int64(r, 0, 0),
           bytes = (double)ns_pg_int64(r, 0, 1),
           missing = (double)ns_pg_int64(r, 0, 2),
           detected = (double)ns_pg_int64(r, 0, 3),
           invalid = (double)ns_pg_int64(r, 0, 4),
           all_shards = (double)ns_pg_int64(r, 0, 5);
    PQclear(r);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "shards_counted", shards);
    cJSON_AddNumberToObject(d, "shards", all_shards);
    cJSON_AddNumberToObject(d, "documents", docs);
    cJSON_AddNumberToObject(d, "bytes", bytes);
    cJSON_AddNumberToObject(d, "languages", (double)ns_termstats_langs(totals));
    cJSON_AddNumberToObject(d, "terms", (double)ns_termstats_terms(totals));
    cJSON_AddNumberToObject(d, "language_missing", missing);
    cJSON_AddNumberToObject(d, "language_detected", detected);
    cJSON_AddNumberToObject(d, "invalid_utf8_bytes", invalid);
    ns_item_report(ctx, "stopword statistics", d);
    if (ns_item_dry_run(ctx))
        return NS_OK; /* the figures in /metrics stay those of the sets */
    char esc[200], labels[256];
    ns_metrics_label_escape(job, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "job=\"%s\"", esc);
    ns_metrics_gauge_set("nightshift_stopwords_documents",
                         "Documents in the current stopword statistics.",
                         labels, docs);
    ns_metrics_gauge_set("nightshift_stopwords_languages",
                         "Languages in the current stopword statistics.",
                         labels, (double)ns_termstats_langs(totals));
    ns_metrics_gauge_set("nightshift_stopwords_terms",
                         "Distinct (language, term) pairs counted.", labels,
                         (double)ns_termstats_terms(totals));
    ns_metrics_gauge_set("nightshift_stopwords_language_detected",
                         "Documents whose language had to be detected.", labels,
                         detected);
    return NS_OK;
}

/* A dry run's partials are scratch: they go, in the finalizer's
 * transaction, with the run's status. */
static ns_err_t drop_scratch(ns_item_ctx_t *ctx, PGconn *pg, ns_error_t *err)
{
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    const char *params[] = {ns_item_job(ctx)->name, run};
    return ns_pg_exec(pg,
                      "DELETE FROM stopword_partials WHERE job = $1 AND "
                      "run_id = $2::bigint",
                      2, params, err);
}

/* The totals' binary form and the ranked sets, made on a thread beside
 * the table writes (pure computation on the totals, which nobody changes
 * meanwhile). */
typedef struct encode_job {
    pthread_t thread;
    const ns_termstats_t *totals;
    const ns_termstats_view_t *sorted;
    ns_stop_params_t sp;
    char *data;
    size_t len;
    new_sets_t sets;
    ns_err_t rc;
    ns_error_t err;
} encode_job_t;

static void *encode_main(void *arg)
{
    encode_job_t *j = arg;
    j->rc = ns_termstats_view_encode(j->sorted, &j->data, &j->len, &j->err);
    if (j->rc == NS_OK)
        j->rc = rank_sets(j->totals, &j->sp, &j->sets, &j->err);
    return NULL;
}

/* params: job, run id. */
static ns_err_t store_totals(PGconn *pg, const char *const *params,
                             const char *data, size_t len, ns_error_t *err)
{
    const char *p3[] = {params[0], params[1], data};
    int lengths[] = {0, 0, (int)len};
    int formats[] = {0, 0, 1};
    PGresult *r =
        PQexecParams(pg,
                     "INSERT INTO stopword_totals (job, run_id, data) "
                     "VALUES ($1, $2, $3) ON CONFLICT (job) DO UPDATE "
                     "SET run_id = EXCLUDED.run_id, data = EXCLUDED.data, "
                     "updated_at = now()",
                     3, NULL, p3, lengths, formats, 0);
    ns_err_t rc = NS_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "stopwords.merge: %s",
                          PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

/* The shards now point at this run's partials; the replaced ones go; the
 * watermark moves to this run's start. params: job, run id. */
static ns_err_t advance_shards(PGconn *pg, const char *const *params,
                               ns_error_t *err)
{
    if (ns_pg_exec(pg,
                   "INSERT INTO stopword_shards (job, shard, run_id) "
                   "SELECT job, shard, run_id FROM stopword_partials "
                   "WHERE job = $1 AND run_id = $2::bigint ON CONFLICT "
                   "(job, shard) DO UPDATE SET run_id = EXCLUDED.run_id",
                   2, params, err) != NS_OK ||
        ns_pg_exec(pg,
                   "DELETE FROM stopword_partials p USING "
                   "stopword_shards s WHERE p.job = $1 AND s.job = "
                   "p.job AND s.shard = p.shard AND p.run_id <> "
                   "s.run_id AND NOT EXISTS (SELECT 1 FROM runs r "
                   "WHERE r.run_id = p.run_id AND r.dry_run AND "
                   "r.finished_at IS NULL)",
                   1, params, err) != NS_OK ||
        ns_pg_exec(pg,
                   "INSERT INTO shard_watermarks (job, watermark, "
                   "run_id) SELECT job, watermark, run_id FROM runs "
                   "WHERE run_id = $1::bigint AND watermark IS NOT NULL "
                   "ON CONFLICT (job) DO UPDATE SET watermark = "
                   "EXCLUDED.watermark, run_id = EXCLUDED.run_id",
                   1, params + 1, err) != NS_OK)
        return err->code;
    return NS_OK;
}

ns_err_t ns_stopwords_merge(ns_item_ctx_t *ctx, ns_error_t *err)
{
    int64_t t0 = ns_clock_mono_ms(), t_merged = 0, t_written = 0;
    ns_run_stats_t st;
    ns_item_run_stats(ctx, &st);
    if (st.failed > 0) {
        NS_WARN(ns_item_log(ctx),
                "%lld shard(s) failed: the current stopword statistics stay",
                (long long)st.failed);
        if (ns_item_dry_run(ctx)) {
            PGconn *pg = ns_item_pg(ctx, err);
            return pg == NULL ? err->code : drop_scratch(ctx, pg, err);
        }
        /* The run ends failed; whoever the job notifies hears of it. */
        const char *chat = ns_item_telegram_chat(ctx);
        if (chat == NULL)
            return NS_OK;
        char html[512], key[64];
        snprintf(html, sizeof(html),
                 "⚠️ <b>Stopword refresh failed</b>\n\nRun %lld: %lld of "
                 "%lld shard(s) failed. The current stopword sets stay; "
                 "see <code>nightshift status %lld</code>.",
                 (long long)ns_item_run_id(ctx), (long long)st.failed,
                 (long long)st.total, (long long)ns_item_run_id(ctx));
        snprintf(key, sizeof(key), "stopwords-failed:%lld",
                 (long long)ns_item_run_id(ctx));
        return ns_item_telegram(ctx, chat, html, key, err);
    }
    const char *job = ns_item_job(ctx)->name;
    bool dry = ns_item_dry_run(ctx);
    PGconn *pg = dry ? ns_item_pg(ctx, err) : ns_item_tx(ctx, err);
    if (pg == NULL)
        return err->code;
    char run[24];
    ns_pg_i64str(ns_item_run_id(ctx), run);
    const char *params[] = {job, run};
    /* The totals row is locked: two runs of the job never merge at once. */
    PGresult *r =
        ns_pg_query_binary(pg,
                           dry ? "SELECT data FROM stopword_totals WHERE "
                                 "job = $1"
                               : "SELECT data FROM stopword_totals WHERE "
                                 "job = $1 FOR UPDATE",
                           1, params, err);
    if (r == NULL)
        return err->code;
    ns_termstats_t *totals = ns_termstats_new();
    if (totals == NULL) {
        PQclear(r);
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    }
    if (PQntuples(r) == 1 && merge_col(totals, r, 0, 0, 1, err) != NS_OK) {
        PQclear(r);
        ns_termstats_destroy(totals);
        return fail_with(err, "the stored totals");
    }
    PQclear(r);
    /* Each shard of this run, with the partial it replaces (if any). */
    r = ns_pg_query_binary(
        pg,
        "SELECT p.shard::text, p.data, old.data FROM stopword_partials p "
        "LEFT JOIN "
        "stopword_shards s ON s.job = p.job AND s.shard = p.shard AND "
        "s.run_id <> p.run_id LEFT JOIN stopword_partials old ON old.job = "
        "s.job AND old.shard = s.shard AND old.run_id = s.run_id WHERE "
        "p.job = $1 AND p.run_id = $2::bigint",
        2, params, err);
    ns_err_t rc = r != NULL ? NS_OK : err->code;
    int shards = r != NULL ? PQntuples(r) : 0;
    if (rc == NS_OK)
        rc = merge_rows(totals, r, shards, err);
    PQclear(r);
    t_merged = ns_clock_mono_ms();
    if (rc == NS_OK)
        rc = run_figures(ctx, pg, job, totals, shards, err);
    /* Sorted once, for the encoded totals and the per-term table. */
    ns_termstats_view_t *sorted =
        rc == NS_OK ? ns_termstats_view_new(totals, err) : NULL;
    if (sorted == NULL && rc == NS_OK)
        rc = err->code;
    encode_job_t enc = {.totals = totals,
                        .sorted = sorted,
                        .sp = stop_params(ns_item_job(ctx)->params)};
    if (rc == NS_OK && dry) {
        rc = drop_scratch(ctx, pg, err);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "shards", shards);
        cJSON_AddNumberToObject(d, "languages",
                                (double)ns_termstats_langs(totals));
        cJSON_AddNumberToObject(d, "terms", (double)ns_termstats_terms(totals));
        ns_item_report(ctx, "merge stopword statistics", d);
        if (rc == NS_OK)
            rc = rank_sets(totals, &enc.sp, &enc.sets, err);
    } else if (rc == NS_OK) {
        /* The totals are encoded and the sets ranked on a thread of their
         * own while Postgres takes the per-term table (its COPY and index
         * build keep a core of their own busy). */
        bool threaded =
            pthread_create(&enc.thread, NULL, encode_main, &enc) == 0;
        if (!threaded)
            encode_main(&enc);
        rc = advance_shards(pg, params, err);
        if (rc == NS_OK)
            rc = write_terms(
                pg, job,
                (int64_t)param_num(ns_item_job(ctx)->params, "terms_min_df", 2),
                sorted, err);
        if (threaded)
            pthread_join(enc.thread, NULL);
        if (rc == NS_OK && enc.rc != NS_OK)
            rc = ns_error_set(err, enc.rc, "stopwords.merge: %s", enc.err.msg);
        if (rc == NS_OK)
            rc = store_totals(pg, params, enc.data, enc.len, err);
        free(enc.data);
    }
    t_written = ns_clock_mono_ms();
    /* Last: the sets change only once everything else is in place (the
     * transaction commits right after; should that fail, the finalizer
     * runs again and publishes the same sets). */
    if (rc == NS_OK)
        rc = publish_sets(ctx, &enc.sets, dry, err);
    sets_free(&enc.sets);
    if (rc == NS_OK)
        NS_INFO(ns_item_log(ctx),
                "stopword statistics merged: %d shard(s), %zu languages, "
                "%zu terms (merge %lld ms, tables %lld ms, sets %lld ms)",
                shards, ns_termstats_langs(totals), ns_termstats_terms(totals),
                (long long)(t_merged - t0), (long long)(t_written - t_merged),
                (long long)(ns_clock_mono_ms() - t_written));
    ns_termstats_view_destroy(sorted);
    ns_termstats_destroy(totals);
    return rc;
}
