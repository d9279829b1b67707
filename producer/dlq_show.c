/* `nightshift dlq show`: one dead letter with its cause, origin, current
 * state and history; the payload as JSON (undoing zstd first) or, when it
 * is not JSON, as a hex dump. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "dlq.h"
#include "dlq_internal.h"
#include "ns/buf.h"
#include "ns/pg.h"
#include "ns/utf8.h"

#define HEXDUMP_MAX 512
#define UNZSTD_MAX (16u << 20)

int dlq_is_zstd(const unsigned char *p, size_t len)
{
    return len >= 4 && p[0] == 0x28 && p[1] == 0xB5 && p[2] == 0x2F &&
           p[3] == 0xFD;
}

/* Undoes zstd (the frames need not state their size), at most UNZSTD_MAX
 * bytes. @returns malloc'd NUL-terminated bytes, or NULL. */
static char *unzstd(const unsigned char *p, size_t len, size_t *out_len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer in = {p, len, 0};
    unsigned char chunk[16384];
    ns_buf_t b;
    ns_buf_init(&b, UNZSTD_MAX);
    bool ok = dctx != NULL;
    while (ok) {
        ZSTD_outBuffer o = {chunk, sizeof(chunk), 0};
        size_t left = ZSTD_decompressStream(dctx, &o, &in);
        ok = !ZSTD_isError(left) && ns_buf_add(&b, chunk, o.pos) == NS_OK;
        if (!ok || (left == 0 && in.pos == in.size))
            break;
        /* No progress with all input read: the frame is truncated. */
        ok = o.pos > 0 || in.pos < in.size;
    }
    ZSTD_freeDCtx(dctx);
    *out_len = b.len;
    if (!ok) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* The bytes as a JSON document if they are UTF-8 JSON (after undoing zstd
 * when they start with its magic number), else NULL. */
static cJSON *payload_json(const unsigned char *p, size_t len, bool *zstd)
{
    *zstd = dlq_is_zstd(p, len);
    size_t text_len = len;
    char *text = *zstd ? unzstd(p, len, &text_len) : malloc(len + 1);
    if (text == NULL)
        return NULL;
    if (!*zstd) {
        memcpy(text, p, len);
        text[len] = '\0';
    }
    cJSON *doc = NULL;
    if (ns_utf8_invalid_at(text, text_len) < 0)
        doc = cJSON_ParseWithOpts(text, NULL, 1);
    free(text);
    return doc;
}

static void hexdump(FILE *out, const unsigned char *p, size_t len)
{
    size_t n = len < HEXDUMP_MAX ? len : HEXDUMP_MAX;
    for (size_t off = 0; off < n; off += 16) {
        fprintf(out, "  %08zx", off);
        for (size_t i = off; i < off + 16; i++) {
            if (i < n)
                fprintf(out, "%s%02x", i % 8 == 0 ? "  " : " ", p[i]);
            else
                fprintf(out, "%s  ", i % 8 == 0 ? "  " : " ");
        }
        fputs("  |", out);
        for (size_t i = off; i < off + 16 && i < n; i++)
            fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.', out);
        fputs("|\n", out);
    }
    if (len > n)
        fprintf(out, "  ... %zu more bytes\n", len - n);
}

static void print_field(FILE *out, const char *name, const char *value)
{
    fprintf(out, "  %-15s %s\n", name, value && *value ? value : "-");
}

static void print_letter(FILE *out, const PGresult *r, const cJSON *doc,
                         bool zstd, const PGresult *history)
{
    char line[512];
    fprintf(out, "dead letter %s\n", PQgetvalue(r, 0, C_ID));
    print_field(out, "reason", PQgetvalue(r, 0, C_REASON));
    print_field(out, "job", dlq_value_or_null(r, 0, C_JOB));
    print_field(out, "handler", dlq_value_or_null(r, 0, C_HANDLER));
    print_field(out, "run", dlq_value_or_null(r, 0, C_RUN));
    print_field(out, "item", dlq_value_or_null(r, 0, C_ITEM));
    char *key = dlq_msg_key_text(r, 0);
    print_field(out, "message key", key);
    free(key);
    print_field(out, "attempts", PQgetvalue(r, 0, C_ATTEMPTS));
    print_field(out, "first failure", dlq_value_or_null(r, 0, C_FIRST));
    print_field(out, "last failure", PQgetvalue(r, 0, C_TIME));
    snprintf(line, sizeof(line), "%s partition %s offset %s",
             PQgetvalue(r, 0, C_TOPIC), PQgetvalue(r, 0, C_PARTITION),
             PQgetvalue(r, 0, C_OFFSET));
    print_field(out, "origin", line);
    const char *item = dlq_value_or_null(r, 0, C_ITEM_STATUS);
    const char *run = dlq_value_or_null(r, 0, C_RUN_STATUS);
    snprintf(line, sizeof(line), "item %s, run %s", item ? item : "unknown",
             run ? run : "unknown");
    print_field(out, "current state", line);
    const char *last = dlq_value_or_null(r, 0, C_REPLAYED_AT);
    snprintf(line, sizeof(line), "%s%s%s", PQgetvalue(r, 0, C_REPLAYS),
             last ? ", last at " : "", last ? last : "");
    print_field(out, "replays", line);
    size_t len = 0;
    unsigned char *payload = dlq_unescape(r, 0, C_PAYLOAD, &len);
    if (doc != NULL) {
        char *text = cJSON_Print(doc);
        fprintf(out, "payload (%s, %zu bytes):\n%s\n", zstd ? "zstd" : "json",
                len, text ? text : "");
        free(text);
    } else {
        fprintf(out, "payload (not JSON, %zu bytes%s):\n", len,
                len > HEXDUMP_MAX ? ", first 512 shown" : "");
        hexdump(out, payload ? payload : (const unsigned char *)"", len);
    }
    PQfreemem(payload);
    int n = history ? PQntuples(history) : 0;
    if (n > 1) {
        fprintf(out, "history of this message:\n");
        for (int i = 0; i < n; i++) {
            fprintf(out, "  %-7s %s  replays %-3s ", PQgetvalue(history, i, 0),
                    PQgetvalue(history, i, 1), PQgetvalue(history, i, 3));
            dlq_put_cell(out, PQgetvalue(history, i, 2), 60, 0);
            fputs(strcmp(PQgetvalue(history, i, 0), PQgetvalue(r, 0, C_ID))
                      ? "\n"
                      : "  (this one)\n",
                  out);
        }
    }
}

static cJSON *letter_json(const PGresult *r, cJSON *doc, bool zstd,
                          const PGresult *history)
{
    cJSON *o = dlq_row_json(r, 0);
    dlq_add_str(o, "first_failed_at", dlq_value_or_null(r, 0, C_FIRST));
    dlq_add_str(o, "item_status", dlq_value_or_null(r, 0, C_ITEM_STATUS));
    dlq_add_str(o, "run_status", dlq_value_or_null(r, 0, C_RUN_STATUS));
    dlq_add_num(o, "payload_size", r, 0, C_SIZE);
    if (doc != NULL) {
        cJSON_AddStringToObject(o, "payload_encoding", zstd ? "zstd" : "json");
        cJSON_AddItemToObject(o, "payload", doc);
    } else {
        dlq_add_str(o, "payload_base64", dlq_value_or_null(r, 0, C_BASE64));
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "history");
    for (int i = 0; history != NULL && i < PQntuples(history); i++) {
        cJSON *h = cJSON_CreateObject();
        dlq_add_num(h, "id", history, i, 0);
        dlq_add_str(h, "time", PQgetvalue(history, i, 1));
        dlq_add_str(h, "reason", PQgetvalue(history, i, 2));
        dlq_add_num(h, "replay_count", history, i, 3);
        dlq_add_str(h, "replayed_at", dlq_value_or_null(history, i, 4));
        cJSON_AddItemToArray(arr, h);
    }
    return o;
}

int ns_dlq_show(const ns_config_t *cfg, const char *id, bool json, FILE *out)
{
    if (!dlq_all_digits(id)) {
        fprintf(stderr, "nightshift dlq show: \"%s\" is not a dead letter id\n",
                id ? id : "");
        return 2;
    }
    PGconn *pg = dlq_connect_pg(cfg, "show");
    if (pg == NULL)
        return 1;
    const char *params[] = {id};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r =
        ns_pg_query(pg, ROW_COLUMNS DETAIL_COLUMNS " WHERE d.id = $1::bigint",
                    1, params, &err);
    if (r == NULL || PQntuples(r) == 0) {
        if (r == NULL)
            fprintf(stderr, "nightshift dlq show: %s\n", err.msg);
        else
            fprintf(stderr, "nightshift dlq show: no dead letter %s\n", id);
        PQclear(r);
        PQfinish(pg);
        return 1;
    }
    PGresult *history = ns_pg_query(
        pg,
        "SELECT h.id, to_char(h.created_at" UTC ", h.reason, "
        "h.replay_count, to_char(h.replayed_at" UTC " FROM dead_letters d "
        "JOIN dead_letters h ON " SAME_MESSAGE " WHERE d.id = $1::bigint "
        "ORDER BY h.id LIMIT 100",
        1, params, &err);
    size_t len = 0;
    unsigned char *payload = dlq_unescape(r, 0, C_PAYLOAD, &len);
    bool zstd = false;
    cJSON *doc = payload ? payload_json(payload, len, &zstd) : NULL;
    PQfreemem(payload);
    if (json) {
        cJSON *o = letter_json(r, doc, zstd, history);
        char *text = cJSON_Print(o);
        fprintf(out, "%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
    } else {
        print_letter(out, r, doc, zstd, history);
        cJSON_Delete(doc);
    }
    PQclear(history);
    PQclear(r);
    PQfinish(pg);
    return 0;
}
