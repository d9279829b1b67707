/* langdetect.h: the language of a text, for documents that arrive without
 * one (libexttextcat: character n-gram profiles of ~160 languages, the
 * models LibreOffice uses). About a third of a millisecond per document,
 * so it runs only where the language is missing. */
#ifndef NS_LANGDETECT_H
#define NS_LANGDETECT_H

#include <stddef.h>

#include "ns/err.h"

typedef struct ns_langdetect ns_langdetect_t;

/** @brief Loads the models (NS_TEXTCAT_DIR, default
 *  /usr/share/libexttextcat). One per thread. @returns NULL with err set. */
ns_langdetect_t *ns_langdetect_new(ns_error_t *err);
void ns_langdetect_destroy(ns_langdetect_t *d);

/** @brief The ISO 639 code of text's language ("en", "zh", "ckb") in
 *  lang[size]; "" when the text is too short or matches no model.
 *  @returns 1 when a language was found. Looks at the first 1,000 bytes. */
int ns_langdetect(ns_langdetect_t *d, const char *text, size_t len, char *lang,
                  size_t size);

#endif
