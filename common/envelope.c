#include "ns/envelope.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "ns/utf8.h"

ns_err_t ns_envelope_encode(const ns_envelope_t *env, char **out,
                            size_t *out_len, bool *compressed, ns_error_t *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "v", NS_ENVELOPE_VERSION);
    cJSON_AddStringToObject(root, "job", env->job);
    cJSON_AddNumberToObject(root, "run_id", (double)env->run_id);
    cJSON_AddStringToObject(root, "item_key", env->item_key);
    cJSON_AddNumberToObject(root, "attempt", env->attempt);
    cJSON_AddBoolToObject(root, "dry_run", env->dry_run);
    cJSON_AddItemToObject(root, "payload",
                          env->payload ? cJSON_Duplicate(env->payload, 1)
                                       : cJSON_CreateObject());
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (json == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "envelope: out of memory");
    size_t len = strlen(json);
    char *z = NULL;
    ns_err_t rc = ns_envelope_compress(json, len, &z, out_len, compressed, err);
    if (rc != NS_OK || z != NULL) {
        free(json);
        *out = z;
        return rc;
    }
    *out = json;
    *out_len = len;
    return NS_OK;
}

char *ns_envelope_json_string(const char *s)
{
    cJSON *str = cJSON_CreateString(s != NULL ? s : "");
    char *out = str != NULL ? cJSON_PrintUnformatted(str) : NULL;
    cJSON_Delete(str);
    return out;
}

ns_err_t ns_envelope_format(ns_buf_t *out, const char *job_json, int64_t run_id,
                            const char *item_key, int attempt, bool dry_run,
                            const char *payload_json, size_t payload_len)
{
    ns_buf_reset(out);
    /* The key escaped into a stack buffer when it fits (it almost always
     * does: keys are at most NS_ITEM_KEY_MAX bytes, escaping at most 6x). */
    cJSON key = {.type = cJSON_String, .valuestring = (char *)item_key};
    char esc[6 * NS_ITEM_KEY_MAX + 8];
    char *heap = NULL;
    const char *key_json = esc;
    if (!cJSON_PrintPreallocated(&key, esc, (int)sizeof(esc), 0)) {
        key_json = heap = ns_envelope_json_string(item_key);
        if (heap == NULL)
            return NS_ERR_NOMEM;
    }
    ns_err_t rc = ns_buf_addf(out,
                              "{\"v\":%d,\"job\":%s,\"run_id\":%lld,"
                              "\"item_key\":%s,\"attempt\":%d,"
                              "\"dry_run\":%s,\"payload\":",
                              NS_ENVELOPE_VERSION, job_json, (long long)run_id,
                              key_json, attempt, dry_run ? "true" : "false");
    free(heap);
    if (rc == NS_OK)
        rc = ns_buf_add(out, payload_json, payload_len);
    if (rc == NS_OK)
        rc = ns_buf_add(out, "}", 1);
    return rc;
}

ns_err_t ns_envelope_compress(const char *json, size_t len, char **out,
                              size_t *out_len, bool *compressed,
                              ns_error_t *err)
{
    *out = NULL;
    *compressed = false;
    if (len < NS_ENVELOPE_COMPRESS_AT)
        return NS_OK;
    size_t cap = ZSTD_compressBound(len);
    char *z = malloc(cap);
    if (z == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "envelope: out of memory");
    size_t zlen = ZSTD_compress(z, cap, json, len, 3);
    if (ZSTD_isError(zlen)) {
        free(z);
        return ns_error_set(err, NS_ERR_INVALID, "envelope: zstd: %s",
                            ZSTD_getErrorName(zlen));
    }
    *out = z;
    *out_len = zlen;
    *compressed = true;
    return NS_OK;
}

static char *decompress(const char *data, size_t len, size_t max_len,
                        size_t *out_len, ns_error_t *err)
{
    unsigned long long size = ZSTD_getFrameContentSize(data, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
        ns_error_set(err, NS_ERR_PERMANENT,
                     "bad input: zstd header is not a sized frame");
        return NULL;
    }
    if (size > max_len) {
        ns_error_set(err, NS_ERR_PERMANENT,
                     "bad input: payload of %llu bytes after decompression "
                     "exceeds the limit of %zu",
                     size, max_len);
        return NULL;
    }
    char *buf = malloc((size_t)size + 1);
    if (buf == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "envelope: out of memory");
        return NULL;
    }
    size_t n = ZSTD_decompress(buf, (size_t)size, data, len);
    if (ZSTD_isError(n)) {
        free(buf);
        ns_error_set(err, NS_ERR_PERMANENT, "bad input: zstd: %s",
                     ZSTD_getErrorName(n));
        return NULL;
    }
    buf[n] = '\0';
    *out_len = n;
    return buf;
}

static ns_err_t bad(ns_error_t *err, const char *what)
{
    return ns_error_set(err, NS_ERR_PERMANENT, "bad input: %s", what);
}

static ns_err_t from_json(const cJSON *root, ns_envelope_t *out,
                          ns_error_t *err)
{
    if (!cJSON_IsObject(root))
        return bad(err, "envelope is not a JSON object");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run_id");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(root, "item_key");
    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(root, "attempt");
    const cJSON *dry = cJSON_GetObjectItemCaseSensitive(root, "dry_run");
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
    /* Identity first, so a later failure can still name the item. */
    if (cJSON_IsString(job))
        out->job = strdup(job->valuestring);
    if (cJSON_IsNumber(run) && run->valuedouble >= 1 &&
        run->valuedouble < 9e15 &&
        run->valuedouble == (double)(int64_t)run->valuedouble)
        out->run_id = (int64_t)run->valuedouble;
    if (cJSON_IsString(key) && key->valuestring[0] != '\0' &&
        strlen(key->valuestring) <= NS_ITEM_KEY_MAX)
        out->item_key = strdup(key->valuestring);

    if (!cJSON_IsNumber(v))
        return bad(err, "envelope has no version \"v\"");
    /* valuedouble, not valueint: "v": 1.5 must not pass for version 1. */
    if (v->valuedouble != NS_ENVELOPE_VERSION)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: unsupported envelope version %g "
                            "(this worker speaks %d)",
                            v->valuedouble, NS_ENVELOPE_VERSION);
    out->v = v->valueint;
    if (out->job == NULL || out->job[0] == '\0')
        return bad(err, "envelope field \"job\" missing or not a string");
    if (out->run_id == 0)
        return bad(err, "envelope field \"run_id\" missing or not a "
                        "positive integer");
    if (out->item_key == NULL)
        return bad(err, "envelope field \"item_key\" missing, empty or "
                        "longer than 512 bytes");
    if (attempt != NULL && !cJSON_IsNumber(attempt))
        return bad(err, "envelope field \"attempt\" is not a number");
    out->attempt = attempt ? attempt->valueint : 1;
    if (dry != NULL && !cJSON_IsBool(dry))
        return bad(err, "envelope field \"dry_run\" is not a boolean");
    out->dry_run = cJSON_IsTrue(dry);
    if (!cJSON_IsObject(payload))
        return bad(err, "envelope field \"payload\" missing or not an "
                        "object");
    out->payload = cJSON_Duplicate(payload, 1);
    return out->payload ? NS_OK
                        : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
}

ns_err_t ns_envelope_decode(const char *data, size_t len, bool compressed,
                            size_t max_len, ns_envelope_t *out, ns_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (len > max_len)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: message of %zu bytes exceeds the "
                            "limit of %zu",
                            len, max_len);
    char *plain = NULL;
    if (compressed) {
        plain = decompress(data, len, max_len, &len, err);
        if (plain == NULL)
            return err ? err->code : NS_ERR_PERMANENT;
        data = plain;
    }
    ns_err_t rc = NS_OK;
    long at = ns_utf8_invalid_at(data, len);
    if (at >= 0) {
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "bad input: invalid UTF-8 at byte %ld", at);
    } else {
        cJSON *root = cJSON_ParseWithLength(data, len);
        if (root == NULL)
            rc = bad(err, "malformed JSON");
        else
            rc = from_json(root, out, err);
        cJSON_Delete(root);
    }
    free(plain);
    if (rc != NS_OK) {
        cJSON_Delete(out->payload);
        out->payload = NULL;
    }
    return rc;
}

void ns_envelope_free(ns_envelope_t *env)
{
    if (env == NULL)
        return;
    free(env->job);
    free(env->item_key);
    cJSON_Delete(env->payload);
    memset(env, 0, sizeof(*env));
}
