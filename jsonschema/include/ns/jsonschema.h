/* jsonschema.h: a JSON Schema (draft 2020-12) validator for a strict subset.
 * Compiling rejects every keyword it does not enforce, so a schema is never
 * silently ignored; validation names the JSON Pointer of the first failure. */
#ifndef NS_JSONSCHEMA_H
#define NS_JSONSCHEMA_H

#include <cjson/cJSON.h>

#include "ns/err.h"

/** Deepest nesting of subschemas in a schema, and of an instance. */
#define NS_JSONSCHEMA_MAX_DEPTH 64
/** Largest schema file ns_jsonschema_load() reads. */
#define NS_JSONSCHEMA_MAX_FILE (1024 * 1024)

typedef struct ns_jsonschema ns_jsonschema_t;

/** @brief Compiles schema (not owned: it is copied).
 *  Supported: type, properties, required, additionalProperties, enum, const,
 *  minLength, maxLength, minimum, maximum, exclusiveMinimum,
 *  exclusiveMaximum, items, minItems, maxItems, format ("date-time",
 *  "date"), anyOf; annotations (title, description, $schema, $id,
 *  $comment, examples, default) are accepted and ignored.
 *  @returns the schema, or NULL with err set (NS_ERR_INVALID, e.g.
 *  "schema at /properties/title: unsupported keyword \"pattern\"").
 *  @remark Thread-safe to use from many threads once compiled. */
ns_jsonschema_t *ns_jsonschema_new(const cJSON *schema, ns_error_t *err);

/** @brief Reads, parses and compiles a schema file of at most
 *  NS_JSONSCHEMA_MAX_FILE bytes; error messages start with the path. */
ns_jsonschema_t *ns_jsonschema_load(const char *path, ns_error_t *err);

/** @brief Validates instance against s.
 *  @returns NS_OK, or NS_ERR_INVALID with err->msg naming the JSON Pointer
 *  of the first failure: "at /due_at: expected string or null, got number"
 *  ("at (root): ..." for the instance itself). Keywords are checked in a
 *  fixed order and properties in schema order, so the message is stable.
 *  @remark A string that is not valid UTF-8 (cJSON does not check) fails
 *  wherever the schema reaches it; lengths count code points. */
ns_err_t ns_jsonschema_validate(const ns_jsonschema_t *s, const cJSON *instance,
                                ns_error_t *err);

/** @brief The schema as given (owned by s), e.g. to send it to an API. */
const cJSON *ns_jsonschema_json(const ns_jsonschema_t *s);

/** @brief Frees s; NULL is a no-op. */
void ns_jsonschema_destroy(ns_jsonschema_t *s);

#endif
