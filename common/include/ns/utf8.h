/* utf8.h: UTF-8 validation and repair (utf8proc underneath). */
#ifndef NS_UTF8_H
#define NS_UTF8_H

#include <stddef.h>

/** @brief Byte offset of the first invalid sequence, or -1 if s[0..len) is
 *  valid UTF-8 (NUL bytes count as invalid: they break C strings and
 *  Postgres text). */
long ns_utf8_invalid_at(const char *s, size_t len);

/** @brief A malloc'd copy with invalid sequences replaced by U+FFFD. */
char *ns_utf8_sanitize(const char *s, size_t len);

#endif
