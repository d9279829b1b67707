/* embedded.h: files compiled into the binary (cmake/embed_files.cmake):
 * each embedding is an array of {name, data} plus its count, declared by
 * the module that owns it (the migrations, the structurer's schemas). */
#ifndef NS_EMBEDDED_H
#define NS_EMBEDDED_H

typedef struct ns_embedded_file {
    const char *name; /**< file name, e.g. "task.json" */
    const char *data; /**< contents, NUL-terminated */
} ns_embedded_file_t;

/** @brief The contents of the file called name among files[0..count), or
 *  NULL. */
const char *ns_embedded_find(const ns_embedded_file_t *files, int count,
                             const char *name);

#endif
