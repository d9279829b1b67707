#include "ns/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* 1 when none of the 8 bytes at p is NUL or has its high bit set. */
static int plain_ascii8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    /* (v - ones) & ~v & high: a zero byte; v & high: a non-ASCII one. */
    return ((v | ((v - ones) & ~v)) & high) == 0;
}

long ns_utf8_invalid_at(const char *s, size_t len)
{
    size_t pos = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (pos < len) {
        /* Most log text is ASCII: skip it 8 bytes at a time, and hand
         * utf8proc only what is not. */
        while (pos + 8 <= len && plain_ascii8(u + pos))
            pos += 8;
        if (pos < len && u[pos] != 0 && u[pos] < 0x80) {
            pos++;
            continue;
        }
        if (pos >= len)
            break;
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
