/* dlq_internal.h: what dlq.c (list), dlq_show.c and dlq_replay.c share —
 * the dead_letters query text and its columns, the filter's WHERE clause,
 * and row formatting. Private to producer/; not installed. */
#ifndef NS_DLQ_INTERNAL_H
#define NS_DLQ_INTERNAL_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

#include "dlq.h"
#include "ns/buf.h"
#include "ns/kafka.h"

#define SQL_MAX (64u << 20)

/* to_char format of every timestamp shown: RFC 3339 UTC. */
#define UTC " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* h is the same message as d: the same item, or for messages that never
 * named an existing item, the same bytes from the same topic. */
#define SAME_MESSAGE                                                           \
    "(CASE WHEN d.run_id IS NOT NULL AND d.item_key IS NOT NULL "              \
    "THEN h.run_id = d.run_id AND h.item_key = d.item_key "                    \
    "ELSE h.run_id IS NULL AND h.topic = d.topic AND "                         \
    "h.msg_key IS NOT DISTINCT FROM d.msg_key AND "                            \
    "h.payload IS NOT DISTINCT FROM d.payload END)"

#define ROW_COLUMNS                                                            \
    "SELECT d.id, to_char(d.created_at" UTC ", d.job, d.run_id, "              \
    "d.item_key, d.msg_key, d.attempts, d.reason, d.replay_count, "            \
    "to_char(d.replayed_at" UTC ", d.topic, d.partition, d.\"offset\", "       \
    "d.handler"
/* Columns of ROW_COLUMNS, then those DETAIL_COLUMNS adds (show, replay). */
enum {
    C_ID,
    C_TIME,
    C_JOB,
    C_RUN,
    C_ITEM,
    C_KEY,
    C_ATTEMPTS,
    C_REASON,
    C_REPLAYS,
    C_REPLAYED_AT,
    C_TOPIC,
    C_PARTITION,
    C_OFFSET,
    C_HANDLER,
    C_FIRST,
    C_PAYLOAD,
    C_SIZE,
    C_BASE64,
    C_ITEM_STATUS,
    C_RUN_STATUS,
    C_SUPERSEDED_BY
};
#define DETAIL_COLUMNS                                                         \
    ", to_char(d.first_failed_at" UTC ", d.payload, octet_length(d.payload), " \
    "translate(encode(d.payload, 'base64'), E'\\n', ''), i.status, "           \
    "r.status, CASE WHEN d.replay_count > 0 THEN (SELECT min(h.id) FROM "      \
    "dead_letters h WHERE h.created_at >= d.created_at AND h.id > d.id "       \
    "AND " SAME_MESSAGE ") END "                                               \
    "FROM dead_letters d LEFT JOIN items i ON i.run_id = d.run_id AND "        \
    "i.item_key = d.item_key LEFT JOIN runs r ON r.run_id = d.run_id"

/* A query being built: its text and its parameters. */
typedef struct dlq_query {
    ns_buf_t sql;
    const char *params[5];
    int n;
    char topic[NS_TOPIC_MAX];
    char since[24];
} dlq_query_t;

/* s is 1 to 18 decimal digits. */
int dlq_all_digits(const char *s);

/* Appends the filter's WHERE clause. @returns 0, or 2 (usage) with a
 * message on stderr. */
int dlq_add_where(dlq_query_t *q, const ns_dlq_filter_t *f, const char *verb);

/* Runs q; NULL with the cause on stderr. */
PGresult *dlq_run_query(PGconn *pg, dlq_query_t *q, const char *verb);

/* Connects to cfg's Postgres; NULL with the cause on stderr. */
PGconn *dlq_connect_pg(const ns_config_t *cfg, const char *verb);

const char *dlq_value_or_null(const PGresult *r, int row, int col);

/* A bytea column's bytes (caller PQfreemem); NULL when SQL NULL. */
unsigned char *dlq_unescape(const PGresult *r, int row, int col, size_t *len);

/* The message key as text: itself when it is UTF-8, else "0x" + hex
 * (malloc'd; NULL when there is none). */
char *dlq_msg_key_text(const PGresult *r, int row);

/* The item key, else the message key (malloc'd; NULL if neither). */
char *dlq_key_text(const PGresult *r, int row);

/* A string member of o, or null when value is NULL. */
void dlq_add_str(cJSON *o, const char *name, const char *value);

/* A number member of o from column col, or null when SQL NULL. */
void dlq_add_num(cJSON *o, const char *name, const PGresult *r, int row,
                 int col);

/* The ROW_COLUMNS of one row as a JSON object. */
cJSON *dlq_row_json(const PGresult *r, int row);

/* Prints s in a column `width` code points wide: control characters become
 * spaces, longer text is cut with an ellipsis. */
void dlq_put_cell(FILE *out, const char *s, int width, int pad);

/* The bytes start with zstd's magic number. */
int dlq_is_zstd(const unsigned char *p, size_t len);

#endif
