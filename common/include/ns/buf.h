/* buf.h: a bounded growable byte buffer (curl's dynbuf idea).
 * Every buffer has a maximum size so hostile input cannot grow memory
 * without limit; the contents are always NUL-terminated. */
#ifndef NS_BUF_H
#define NS_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "ns/err.h"

typedef struct ns_buf {
    char *data; /**< NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /**< appends past this fail with NS_ERR_INVALID */
} ns_buf_t;

void ns_buf_init(ns_buf_t *b, size_t max);
ns_err_t ns_buf_add(ns_buf_t *b, const void *data, size_t len);
ns_err_t ns_buf_adds(ns_buf_t *b, const char *s);
ns_err_t ns_buf_addf(ns_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ns_err_t ns_buf_vaddf(ns_buf_t *b, const char *fmt, va_list ap);
/** @brief Appends data[0..len) in base64 (RFC 4648, padded). */
ns_err_t ns_buf_add_base64(ns_buf_t *b, const void *data, size_t len);
/** @brief Returns the contents (caller frees; "" if empty) and resets b. */
char *ns_buf_take(ns_buf_t *b);
void ns_buf_reset(ns_buf_t *b);
void ns_buf_free(ns_buf_t *b);

#endif
