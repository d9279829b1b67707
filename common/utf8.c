#include "ns/utf8.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

long ns_utf8_invalid_at(const char *s, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos,
                             (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0 || cp == 0)
            return (long)pos;
        pos += (size_t)n;
    }
    return -1;
}

char *ns_utf8_sanitize(const char *s, size_t len)
{
    /* Worst case: every byte becomes the 3-byte U+FFFD. */
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t pos = 0, o = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos,
                             (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0 || cp == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            pos += 1;
            continue;
        }
        memcpy(out + o, s + pos, (size_t)n);
        o += (size_t)n;
        pos += (size_t)n;
    }
    out[o] = '\0';
    return out;
}
