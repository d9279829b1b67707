/* ingest.c: ingest.telegram, the stream handler behind `nightshift
 * ingest` (seed 002: store absolutely everything raw first).
 * One item = one Telegram update (or {"bot_response": Message}), keyed by
 * its chat, so a chat's messages are stored in order. In one transaction:
 * the update as it came (raw_updates, unique on update_id: a redelivery
 * stores nothing), the message laid out (raw_messages, unique on chat and
 * message id; an edit updates the text and makes it unprocessed again),
 * the reply chain appended to atomically (message_chains: one upsert
 * whose `replies || new` runs under the row lock, so concurrent replies
 * are all kept) and the file it carries (raw_files). A file's content is
 * fetched with getFile before the transaction into params.files_dir,
 * named by its sha256; the same file twice is stored once.
 * Params: files_dir (required for files), max_file_bytes (default 20 MB,
 * the Bot API's limit; larger files keep their metadata only). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers.h"
#include "ns/log.h"
#include "ns/pg.h"
#include "ns/telegram.h"

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* A JSON number as a decimal string ("" when absent). */
static void num(const cJSON *v, char out[24])
{
    if (cJSON_IsNumber(v))
        snprintf(out, 24, "%.0f", v->valuedouble);
    else
        out[0] = '\0';
}

static const char *str(const cJSON *v)
{
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The kinds of file a message may carry, most specific first. */
static const char *const FILE_KINDS[] = {"document",  "photo",   "voice",
                                         "audio",     "video",   "video_note",
                                         "animation", "sticker", NULL};

/* What a message is: its file kind, or text, or the first known key. */
static const char *message_type(const cJSON *m, const cJSON **file)
{
    *file = NULL;
    for (int i = 0; FILE_KINDS[i] != NULL; i++) {
        const cJSON *f = get(m, FILE_KINDS[i]);
        if (f == NULL)
            continue;
        /* A photo comes in sizes: the largest is the last. */
        *file = cJSON_IsArray(f)
                    ? cJSON_GetArrayItem(f, cJSON_GetArraySize(f) - 1)
                    : f;
        return FILE_KINDS[i];
    }
    static const char *const others[] = {"text",  "location", "contact", "poll",
                                         "venue", "dice",     NULL};
    for (int i = 0; others[i] != NULL; i++)
        if (get(m, others[i]) != NULL)
            return others[i];
    return "other";
}

/* The first column of the first row of sql (one parameter) in out, ""
 * when there is no row. */
static ns_err_t first_value(PGconn *pg, const char *sql, const char *param,
                            char out[24], ns_error_t *err)
{
    const char *params[] = {param};
    PGresult *r = ns_pg_query(pg, sql, 1, params, err);
    if (r == NULL)
        return err->code;
    snprintf(out, 24, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return NS_OK;
}

/* ---- files --------------------------------------------------------------- */

typedef struct fetched {
    char hash[65];
    char path[4096]; /* "" when not fetched */
    char id[24];     /* raw_files.id already stored, or "" */
} fetched_t;

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* Writes data to dir/ab/abcdef... (atomically: temporary, then rename). */
static ns_err_t store_content(const char *dir, const char *hash,
                              const char *data, size_t len, char *path,
                              size_t cap, ns_error_t *err)
{
    char sub[3900], tmp[4200];
    if (strlen(dir) > 3800)
        return ns_error_set(err, NS_ERR_PERMANENT, "files_dir is too long");
    snprintf(sub, sizeof(sub), "%s/%.2s", dir, hash);
    if ((mkdir(dir, 0750) != 0 && errno != EEXIST) ||
        (mkdir(sub, 0750) != 0 && errno != EEXIST))
        return ns_error_set(err, NS_ERR_TRANSIENT, "files_dir %s: %s", sub,
                            strerror(errno));
    snprintf(path, cap, "%s/%s", sub, hash);
    struct stat st;
    if (stat(path, &st) == 0 && (size_t)st.st_size == len)
        return NS_OK; /* the same content is there already */
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL && fwrite(data, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ns_error_set(err, NS_ERR_TRANSIENT, "storing %s: %s", path,
                            strerror(e));
    }
    return NS_OK;
}

/* Before the transaction: the file's content, unless it is known (same
 * unique id) or too large. */
static ns_err_t fetch_file(ns_item_ctx_t *ctx, PGconn *pg, const cJSON *file,
                           fetched_t *out, ns_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *unique = str(get(file, "file_unique_id"));
    const char *fid = str(get(file, "file_id"));
    if (unique != NULL) {
        if (first_value(pg,
                        "SELECT id FROM raw_files WHERE "
                        "telegram_file_unique_id = $1",
                        unique, out->id, err) != NS_OK)
            return err->code;
        if (out->id[0] != '\0')
            return NS_OK;
    }
    const cJSON *params = ns_item_job(ctx)->params;
    const cJSON *maxv = get(params, "max_file_bytes");
    double max = cJSON_IsNumber(maxv) ? maxv->valuedouble : 20e6;
    const cJSON *size = get(file, "file_size");
    if (fid == NULL || (cJSON_IsNumber(size) && size->valuedouble > max))
        return NS_OK; /* metadata only */
    const char *dir = str(get(params, "files_dir"));
    if (dir == NULL || dir[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "ingest.telegram: a file arrived and "
                            "params.files_dir is not set");
    char *data = NULL;
    size_t len = 0;
    if (ns_tg_get_file(&ns_item_config(ctx)->telegram, fid, (size_t)max, &data,
                       &len, err) != NS_OK)
        return err->code;
    sha256_hex(data, len, out->hash);
    ns_err_t rc = store_content(dir, out->hash, data, len, out->path,
                                sizeof(out->path), err);
    free(data);
    return rc;
}

/* In the transaction: the raw_files row (once per content); its id. */
static ns_err_t record_file(PGconn *tx, const char *user, const char *chat,
                            const char *msg_id, const char *kind,
                            const cJSON *file, fetched_t *f, ns_error_t *err)
{
    if (f->id[0] == '\0' && f->hash[0] != '\0') {
        /* The same bytes under another unique id: the row stored first. */
        if (first_value(tx, "SELECT id FROM raw_files WHERE file_hash = $1",
                        f->hash, f->id, err) != NS_OK)
            return err->code;
    }
    if (f->id[0] != '\0')
        return NS_OK;
    char size[24];
    num(get(file, "file_size"), size);
    char *meta = cJSON_PrintUnformatted(file);
    const char *params[] = {user,
                            chat,
                            msg_id,
                            kind,
                            str(get(file, "file_name")),
                            f->path[0] ? f->path : NULL,
                            size[0] ? size : NULL,
                            f->hash[0] ? f->hash : NULL,
                            str(get(file, "mime_type")),
                            str(get(file, "file_id")),
                            str(get(file, "file_unique_id")),
                            meta};
    /* Two chats storing one file at once: one of them meets the unique
     * key, fails transiently and finds the row on its next attempt. The
     * no-op update returns the id of a row stored before. */
    PGresult *r = ns_pg_query(
        tx,
        "INSERT INTO raw_files (user_id, chat_id, message_id, file_type, "
        "file_name, file_path, file_size, file_hash, mime_type, "
        "telegram_file_id, telegram_file_unique_id, raw_metadata) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb) ON "
        "CONFLICT (telegram_file_unique_id) DO UPDATE SET "
        "telegram_file_unique_id = EXCLUDED.telegram_file_unique_id "
        "RETURNING id",
        12, params, err);
    free(meta);
    if (r == NULL && strstr(err->msg, "raw_files_file_hash_key") != NULL)
        err->code = NS_ERR_TRANSIENT;
    if (r == NULL)
        return err->code;
    if (PQntuples(r) == 1)
        snprintf(f->id, sizeof(f->id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return NS_OK;
}

/* ---- messages ------------------------------------------------------------ */

/* The fields of a message the tables take, as text parameters. */
typedef struct fields {
    char chat[24], user[24], msg_id[24], date[24], reply_id[24];
    const char *text, *type, *reply_text;
    const cJSON *file;
} fields_t;

static void fields_of(const cJSON *m, fields_t *f)
{
    num(get(get(m, "chat"), "id"), f->chat);
    /* Channel posts have no sender: the channel (or the chat) is it. */
    num(get(get(m, "from"), "id"), f->user);
    if (f->user[0] == '\0')
        num(get(get(m, "sender_chat"), "id"), f->user);
    if (f->user[0] == '\0')
        snprintf(f->user, sizeof(f->user), "%s", f->chat);
    num(get(m, "message_id"), f->msg_id);
    num(get(m, "date"), f->date);
    f->type = message_type(m, &f->file);
    f->text = str(get(m, "text"));
    if (f->text == NULL)
        f->text = str(get(m, "caption"));
    const cJSON *reply = get(m, "reply_to_message");
    num(get(reply, "message_id"), f->reply_id);
    f->reply_text = NULL;
    if (reply != NULL) {
        f->reply_text = str(get(reply, "text"));
        if (f->reply_text == NULL)
            f->reply_text = str(get(reply, "caption"));
        if (f->reply_text == NULL)
            f->reply_text = "[media]";
    }
}

/* The reply joins its original's chain: one upsert, the append under the
 * row's lock, so replies arriving at once are all kept. */
static ns_err_t append_to_chain(PGconn *tx, const fields_t *f, ns_error_t *err)
{
    const char *params[] = {f->chat,
                            f->user,
                            f->reply_id,
                            f->reply_text,
                            f->msg_id,
                            f->text,
                            f->date[0] ? f->date : NULL};
    return ns_pg_exec(
        tx,
        "INSERT INTO message_chains (chat_id, user_id, original_message_id, "
        "original_text, replies) VALUES ($1, $2, $3, $4, "
        "jsonb_build_array(jsonb_build_object('reply_message_id', "
        "$5::bigint, 'reply_text', $6::text, 'user_id', $2::bigint, "
        "'timestamp', to_timestamp($7::bigint)))) ON CONFLICT (chat_id, "
        "original_message_id) DO UPDATE SET replies = message_chains.replies "
        "|| EXCLUDED.replies, updated_at = now()",
        7, params, err);
}

static ns_err_t store_message(ns_item_ctx_t *ctx, PGconn *pg,
                              const char *update_id, const char *raw,
                              const cJSON *m, bool edited, ns_error_t *err)
{
    fields_t f;
    fields_of(m, &f);
    if (f.chat[0] == '\0' || f.msg_id[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: a message without chat or "
                            "message_id");
    fetched_t file = {0};
    if (f.file != NULL && fetch_file(ctx, pg, f.file, &file, err) != NS_OK)
        return err->code;
    PGconn *tx = ns_item_tx(ctx, err);
    if (tx == NULL)
        return err->code;
    if (f.file != NULL && record_file(tx, f.user, f.chat, f.msg_id, f.type,
                                      f.file, &file, err) != NS_OK)
        return err->code;
    char edit_date[24];
    num(get(m, "edit_date"), edit_date);
    const char *params[] = {update_id,
                            f.chat,
                            f.user,
                            f.msg_id,
                            f.text,
                            f.type,
                            f.reply_id[0] ? f.reply_id : NULL,
                            f.reply_text,
                            raw,
                            file.id[0] ? file.id : NULL,
                            f.date[0] ? f.date : NULL,
                            edited ? (edit_date[0] ? edit_date : f.date)
                                   : NULL};
    /* An edit replaces the text and makes the message new to structuring
     * (an edit of a message never seen is stored as it now reads). */
    PGresult *r = ns_pg_query(
        tx,
        edited ? "INSERT INTO raw_messages (update_id, chat_id, user_id, "
                 "message_id, message_text, message_type, reply_to_message_id, "
                 "reply_to_text, is_clarification, raw_telegram_json, file_id, "
                 "sent_at, edited_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                 "$7::bigint IS NOT NULL, $9::jsonb, $10, "
                 "to_timestamp($11::bigint), "
                 "to_timestamp($12::bigint)) ON CONFLICT (chat_id, message_id) "
                 "DO UPDATE SET message_text = EXCLUDED.message_text, "
                 "raw_telegram_json = EXCLUDED.raw_telegram_json, edited_at = "
                 "EXCLUDED.edited_at, file_id = coalesce(EXCLUDED.file_id, "
                 "raw_messages.file_id), is_processed = false, processed_at = "
                 "NULL RETURNING (xmax = 0)"
               : "INSERT INTO raw_messages (update_id, chat_id, user_id, "
                 "message_id, message_text, message_type, reply_to_message_id, "
                 "reply_to_text, is_clarification, raw_telegram_json, file_id, "
                 "sent_at, edited_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                 "$7::bigint IS NOT NULL, $9::jsonb, $10, "
                 "to_timestamp($11::bigint), "
                 "to_timestamp($12::bigint)) ON CONFLICT (chat_id, message_id) "
                 "DO NOTHING RETURNING true",
        12, params, err);
    if (r == NULL)
        return err->code;
    /* Chains grow by new replies only (an edit or a redelivery is not a
     * new reply). */
    bool inserted = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (inserted && f.reply_id[0] != '\0' &&
        append_to_chain(tx, &f, err) != NS_OK)
        return err->code;
    return NS_OK;
}

/* A bot's own reply (the Message its sendMessage returned). */
static ns_err_t store_bot_response(ns_item_ctx_t *ctx, const cJSON *m,
                                   ns_error_t *err)
{
    fields_t f;
    fields_of(m, &f);
    if (f.chat[0] == '\0' || f.msg_id[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: a bot response without chat or "
                            "message_id");
    PGconn *tx = ns_item_tx(ctx, err);
    if (tx == NULL)
        return err->code;
    /* Whose conversation: the user it answered, else the chat. */
    char user[24];
    num(get(get(get(m, "reply_to_message"), "from"), "id"), user);
    char *raw = cJSON_PrintUnformatted(m);
    const char *params[] = {f.chat,   user[0] ? user : f.chat,
                            f.msg_id, f.text ? f.text : "",
                            f.type,   f.reply_id[0] ? f.reply_id : NULL,
                            raw};
    ns_err_t rc = ns_pg_exec(
        tx,
        "INSERT INTO bot_responses (chat_id, user_id, message_id, "
        "response_text, response_type, related_user_message_id, chain_id, "
        "raw_telegram_json) VALUES ($1, $2, $3, $4, $5, $6, (SELECT "
        "chain_id FROM message_chains c WHERE c.chat_id = $1 AND "
        "c.original_message_id = $6::bigint), $7::jsonb) ON CONFLICT "
        "(chat_id, message_id) DO NOTHING",
        7, params, err);
    free(raw);
    return rc;
}

ns_err_t ns_ingest_telegram(ns_item_ctx_t *ctx, ns_error_t *err)
{
    const cJSON *u = ns_item_payload(ctx);
    const cJSON *bot = get(u, "bot_response");
    if (bot != NULL)
        return store_bot_response(ctx, bot, err);
    char update_id[24];
    num(get(u, "update_id"), update_id);
    if (update_id[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: an update without update_id");
    /* The kind: the first field besides update_id. */
    const cJSON *body = NULL;
    for (const cJSON *c = u->child; c != NULL && body == NULL; c = c->next)
        if (strcmp(c->string, "update_id") != 0 && cJSON_IsObject(c))
            body = c;
    const char *kind = body ? body->string : "unknown";
    PGconn *pg = ns_item_pg(ctx, err);
    if (pg == NULL)
        return err->code;
    char seen[24];
    if (first_value(pg,
                    "SELECT update_id FROM raw_updates WHERE update_id = "
                    "$1::bigint",
                    update_id, seen, err) != NS_OK)
        return err->code;
    if (seen[0] != '\0') {
        ns_item_report(ctx, "duplicate update", NULL);
        return NS_OK; /* a redelivery: stored already */
    }
    bool edited = strncmp(kind, "edited_", 7) == 0;
    const char *plain = edited ? kind + 7 : kind;
    bool is_message = strcmp(plain, "message") == 0 ||
                      strcmp(plain, "channel_post") == 0 ||
                      strcmp(plain, "business_message") == 0;
    /* raw_telegram_json is the whole update, as it came. */
    char *raw = cJSON_PrintUnformatted(u);
    if (raw == NULL)
        return ns_error_set(err, NS_ERR_TRANSIENT, "out of memory");
    ns_err_t rc =
        is_message ? store_message(ctx, pg, update_id, raw, body, edited, err)
                   : NS_OK;
    PGconn *tx = rc == NS_OK ? ns_item_tx(ctx, err) : NULL;
    if (tx == NULL) {
        free(raw);
        return rc == NS_OK ? err->code : rc;
    }
    char chat[24];
    num(get(get(body, "chat"), "id"), chat);
    const char *p2[] = {update_id, chat[0] ? chat : NULL, kind, raw};
    /* A concurrent redelivery of the same update loses here, wholly. */
    rc = ns_pg_exec(tx,
                    "INSERT INTO raw_updates (update_id, chat_id, kind, raw) "
                    "VALUES ($1, $2, $3, $4::jsonb)",
                    4, p2, err);
    free(raw);
    if (rc != NS_OK && strstr(err->msg, "raw_updates_pkey") != NULL)
        err->code = rc = NS_ERR_TRANSIENT; /* next attempt sees it stored */
    return rc;
}
