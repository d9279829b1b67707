/* embedded.h: files compiled into the binary (cmake/embed_files.cmake),
 * such as the structurer's JSON Schemas (the .json files of
 * schemas/structure). */
#ifndef NS_EMBEDDED_H
#define NS_EMBEDDED_H

typedef struct ns_embedded_file {
    const char *name; /**< file name, e.g. "task.json" */
    const char *data; /**< contents, NUL-terminated */
} ns_embedded_file_t;

extern const ns_embedded_file_t ns_structure_schemas[];
extern const int ns_structure_schemas_count;

/** @brief The embedded structure schema called name, or NULL. */
const char *ns_structure_schema(const char *name);

#endif
