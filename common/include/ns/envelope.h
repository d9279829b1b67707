/* envelope.h: the item message on the wire (JSON, "v": 1).
 * {"v":1,"job":..,"run_id":..,"item_key":..,"attempt":..,"dry_run":..,
 *  "payload":{..}}; zstd-compressed when large (header ns-encoding: zstd).
 * Decoding validates everything, so bad input gets a clear reason. */
#ifndef NS_ENVELOPE_H
#define NS_ENVELOPE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ns/buf.h"
#include "ns/err.h"

#define NS_ENVELOPE_VERSION 1
#define NS_ITEM_KEY_MAX 512
/** Encoded envelopes above this size are zstd-compressed. */
#define NS_ENVELOPE_COMPRESS_AT (64 * 1024)
#define NS_HEADER_ENCODING "ns-encoding"

typedef struct ns_envelope {
    int v;
    char *job;
    int64_t run_id;
    char *item_key;
    int attempt;
    bool dry_run;
    cJSON *payload; /**< a JSON object, owned */
} ns_envelope_t;

/** @brief Serialises env. @returns malloc'd bytes in *out / *out_len;
 *  *compressed says whether they are zstd (set the header then). */
ns_err_t ns_envelope_encode(const ns_envelope_t *env, char **out,
                            size_t *out_len, bool *compressed, ns_error_t *err);

/** @brief Writes the envelope of one item into out (reset first) with the
 *  payload spliced in as it is: for the planner, whose payloads are
 *  Postgres' own jsonb output (valid JSON objects), so no parse and re-print
 *  per item. job_json is the job name already as a JSON string (quoted,
 *  escaped; see ns_envelope_json_string); the key is escaped here. Same
 *  document as ns_envelope_encode's. */
ns_err_t ns_envelope_format(ns_buf_t *out, const char *job_json, int64_t run_id,
                            const char *item_key, int attempt, bool dry_run,
                            const char *payload_json, size_t payload_len);
/** @brief s as a JSON string (quoted, escaped; malloc'd), or NULL. */
char *ns_envelope_json_string(const char *s);

/** @brief zstd-compresses an encoded envelope (JSON text) when it is at
 *  least NS_ENVELOPE_COMPRESS_AT bytes: *out is then malloc'd and
 *  *compressed true; otherwise *out is NULL (send json as it is). */
ns_err_t ns_envelope_compress(const char *json, size_t len, char **out,
                              size_t *out_len, bool *compressed,
                              ns_error_t *err);

/** @brief Parses and validates bytes (decompressing first if compressed).
 *  Rejects: more than max_len bytes (before or after decompression),
 *  invalid UTF-8, malformed JSON, a version other than 1, missing or
 *  mistyped fields, an empty or over-long item key. On failure out is
 *  left empty and err says why (NS_ERR_PERMANENT). Fields decoded before
 *  the failure (job, run_id, item_key) are kept when possible so the item
 *  can still be marked failed. */
ns_err_t ns_envelope_decode(const char *data, size_t len, bool compressed,
                            size_t max_len, ns_envelope_t *out,
                            ns_error_t *err);

void ns_envelope_free(ns_envelope_t *env);

#endif
