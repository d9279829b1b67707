/* elasticsearch.h: reading one time range of log documents from
 * Elasticsearch (or OpenSearch 2.x's compatible API): a point in time,
 * then _search pages sorted by time and _shard_doc with search_after, so
 * memory stays one page whatever the range holds. */
#ifndef NS_ELASTICSEARCH_H
#define NS_ELASTICSEARCH_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "ns/err.h"

typedef struct ns_es_settings {
    const char *url;      /**< e.g. https://es.example.com:9200 */
    const char *user;     /**< basic auth, or NULL */
    const char *password; /**< secret */
    const char *api_key;  /**< "ApiKey ..." auth instead, or NULL */
    long timeout_ms;
} ns_es_settings_t;

/** Called with each hit's _source (owned by the call); 0 goes on, -1
 *  stops the read (NS_ERR_NOMEM). */
typedef int (*ns_es_doc_fn)(const cJSON *source, void *arg);

/** @brief Every document of index (a name or pattern) whose time_field is
 *  in [from_ms, to_ms), in time order, page_size at a time.
 *  @returns NS_OK with *docs; NS_ERR_TRANSIENT for 429 (Retry-After),
 *  5xx, timeouts; NS_ERR_PERMANENT for 400 (a bad query or field), 401 /
 *  403 (credentials), 404 (no such index). The point in time is closed
 *  in every case. Credentials never appear in err. */
ns_err_t ns_es_read_range(const ns_es_settings_t *es, const char *index,
                          const char *time_field, int64_t from_ms,
                          int64_t to_ms, int page_size, ns_es_doc_fn fn,
                          void *arg, int64_t *docs, ns_error_t *err);

#endif
