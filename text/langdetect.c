#include "ns/langdetect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <textcat.h>

#define SAMPLE_BYTES 1000

struct ns_langdetect {
    void *tc;
};

ns_langdetect_t *ns_langdetect_new(ns_error_t *err)
{
    const char *dir = getenv("NS_TEXTCAT_DIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/usr/share/libexttextcat";
    char conf[512], prefix[512];
    snprintf(conf, sizeof(conf), "%s/fpdb.conf", dir);
    snprintf(prefix, sizeof(prefix), "%s/", dir);
    ns_langdetect_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    d->tc = special_textcat_Init(conf, prefix);
    if (d->tc == NULL) {
        ns_error_set(err, NS_ERR_INVALID,
                     "language detection: cannot load the models of %s "
                     "(libexttextcat-data; NS_TEXTCAT_DIR)",
                     conf);
        free(d);
        return NULL;
    }
    return d;
}

void ns_langdetect_destroy(ns_langdetect_t *d)
{
    if (d == NULL)
        return;
    textcat_Done(d->tc);
    free(d);
}

int ns_langdetect(ns_langdetect_t *d, const char *text, size_t len, char *lang,
                  size_t size)
{
    if (size > 0)
        lang[0] = '\0';
    if (len > SAMPLE_BYTES) {
        /* Cut at a character boundary: never inside a UTF-8 sequence. */
        len = SAMPLE_BYTES;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    const char *r = textcat_Classify(d->tc, text, len);
    /* "[en--utf8][de--utf8]": the first candidate's language, the part
     * before its first '-'. "SHORT", "UNKNOWN": none. */
    if (r == NULL || r[0] != '[' || size == 0)
        return 0;
    size_t n = strcspn(r + 1, "-]");
    if (n == 0 || n >= size)
        return 0;
    memcpy(lang, r + 1, n);
    lang[n] = '\0';
    return 1;
}
