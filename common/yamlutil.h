/* yamlutil.h: libyaml document helpers behind config.c (not public).
 * Every helper reports "PATH:LINE: message" into the context's error, so a
 * caller decides what a value means, not how to complain about it. */
#ifndef NS_YAMLUTIL_H
#define NS_YAMLUTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "ns/err.h"

typedef struct ns_yaml {
    yaml_document_t *doc;
    const char *path;
    ns_error_t *err;
    size_t json_budget; /**< values ns_yaml_to_json may still build */
} ns_yaml_t;

/** @brief Reads path (at most max_bytes) and parses its one document.
 *  @returns NS_OK with doc to be freed by yaml_document_delete, or an error
 *  "PATH: strerror" / "PATH:LINE: problem" (libyaml's problem mark) and
 *  nothing to free. */
ns_err_t ns_yaml_load_file(const char *path, size_t max_bytes,
                           yaml_document_t *doc, ns_error_t *err);

/** @brief 1-based line where node starts. */
int ns_yaml_line(const yaml_node_t *node);

/** @brief Sets "PATH:LINE: message" (NS_ERR_INVALID); returns that code. */
ns_err_t ns_yaml_fail(ns_yaml_t *y, const yaml_node_t *node, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

yaml_node_t *ns_yaml_node(const ns_yaml_t *y, int id);

/** @brief "a scalar", "a sequence" or "a mapping", for messages. */
const char *ns_yaml_kind(const yaml_node_t *node);

/** @brief The scalar's text as written (not interpolated). */
const char *ns_yaml_raw(const yaml_node_t *node);

/** @brief true for a plain "", "~" or "null": the key is treated as absent.
 */
bool ns_yaml_is_null(const yaml_node_t *node);

/** @brief Fails unless node is a mapping with distinct scalar keys; what
 *  names the mapping in the message ("worker: expected a mapping"). */
ns_err_t ns_yaml_check_map(ns_yaml_t *y, const yaml_node_t *node,
                           const char *what);

/** @brief The value of key in map, or NULL. */
yaml_node_t *ns_yaml_get(const ns_yaml_t *y, const yaml_node_t *map,
                         const char *key);

/** @brief Expands ${VAR}, ${VAR:-default} and $$ in text.
 *  @returns NS_OK with *out malloc'd, or an error whose message has no
 *  position (the caller knows the line). */
ns_err_t ns_yaml_interpolate(const char *text, char **out, ns_error_t *err);

/** @brief Typed scalars, interpolated first; what names the key. */
ns_err_t ns_yaml_string(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                        char **out);
ns_err_t ns_yaml_int(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                     long long min, long long max, long long *out);
ns_err_t ns_yaml_double(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                        double min, double max, double *out);
ns_err_t ns_yaml_bool(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                      bool *out);

/** @brief Converts a free-form node to cJSON: plain ints and floats become
 *  numbers, true/false bools, null/~ null, anything else (and every quoted
 *  scalar) a string. @returns NULL with the error set. */
cJSON *ns_yaml_to_json(ns_yaml_t *y, const yaml_node_t *node, const char *what);

#endif
