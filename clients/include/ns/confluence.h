/* confluence.h: publishing a page through Confluence's REST content API
 * (Server/Data Center and Cloud): read its version, upload attachments
 * (create or update), write the new body in storage format at version+1. */
#ifndef NS_CONFLUENCE_H
#define NS_CONFLUENCE_H

#include <stddef.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_confluence_file {
    const char *filename;
    const char *mime_type;
    const void *data;
    size_t len;
} ns_confluence_file_t;

/** @brief text escaped for storage-format XHTML (&, <, >, ", '; control
 *  characters dropped, invalid UTF-8 repaired). @returns malloc'd. */
char *ns_confluence_escape(const char *text);

/** @brief Replaces page page_id's body with storage (XHTML, storage
 *  format) after attaching files (an attachment of the same name gets a
 *  new version), keeping its title unless title is given. A 409 (someone
 *  else's edit in between) reads the version again and retries, up to 3
 *  times. @returns NS_OK; NS_ERR_PERMANENT for 400 (bad body), 401/403
 *  (credentials, permissions: the message says which setting), 404 (no
 *  such page); NS_ERR_TRANSIENT for 429 (err->retry_after_s), 5xx,
 *  timeouts and a conflict that persists. Credentials never appear in
 *  err. */
ns_err_t ns_confluence_publish(const ns_confluence_settings_t *cfg,
                               const char *page_id, const char *title,
                               const char *storage,
                               const ns_confluence_file_t *files,
                               size_t n_files, ns_error_t *err);

#endif
