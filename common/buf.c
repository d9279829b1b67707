#include "ns/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ns_buf_init(ns_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

ns_err_t ns_buf_add(ns_buf_t *b, const void *data, size_t len)
{
    if (len > b->max || b->len > b->max - len)
        return NS_ERR_INVALID;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return NS_ERR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return NS_OK;
}

ns_err_t ns_buf_adds(ns_buf_t *b, const char *s)
{
    return ns_buf_add(b, s, strlen(s));
}

ns_err_t ns_buf_vaddf(ns_buf_t *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0)
        return NS_ERR_INVALID;
    if ((size_t)n < sizeof(small))
        return ns_buf_add(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (big == NULL)
        return NS_ERR_NOMEM;
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    ns_err_t rc = ns_buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

ns_err_t ns_buf_addf(ns_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ns_err_t rc = ns_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *ns_buf_take(ns_buf_t *b)
{
    char *s = b->data ? b->data : strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return s;
}

void ns_buf_reset(ns_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ns_buf_free(ns_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

ns_err_t ns_buf_add_base64(ns_buf_t *b, const void *data, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < len && rc == NS_OK; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        char quad[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                        i + 1 < len ? tab[(v >> 6) & 63] : '=',
                        i + 2 < len ? tab[v & 63] : '='};
        rc = ns_buf_add(b, quad, 4);
    }
    return rc;
}
