/* test_langdetect.c: the language of documents that arrive without one. */
#include "ns/langdetect.h"

#include "nstest.h"

static const char *detect(ns_langdetect_t *d, const char *text)
{
    static char lang[16];
    ns_langdetect(d, text, strlen(text), lang, sizeof(lang));
    return lang;
}

TEST(common_languages_and_scripts)
{
    ns_error_t err;
    ns_langdetect_t *d = ns_langdetect_new(&err);
    if (d == NULL)
        NSTEST_FAIL("%s", err.msg);
    ASSERT_STREQ(detect(d, "The quick brown fox jumps over the lazy dog. It "
                           "is a truth universally acknowledged."),
                 "en");
    ASSERT_STREQ(detect(d, "Le petit prince est parti à la recherche d'un "
                           "ami. L'homme et la mer."),
                 "fr");
    ASSERT_STREQ(detect(d, "Москва — столица России и крупнейший город "
                           "страны."),
                 "ru");
    ASSERT_STREQ(detect(d, "我们是学生，我们在北京学习中文。今天天气很好"),
                 "zh");
    ASSERT_STREQ(detect(d, "Der schnelle braune Fuchs springt über den "
                           "faulen Hund und die Straße ist lang."),
                 "de");
    ASSERT_STREQ(detect(d, ""), "");
    /* Long text is sampled at a character boundary; invalid UTF-8 does not
     * trouble it. */
    char big[5000];
    for (size_t i = 0; i + 3 <= sizeof(big) - 1; i += 3)
        memcpy(big + i, "\xd0\x96 ", 3);
    big[sizeof(big) - 1] = '\0';
    detect(d, big);
    const char bad[] = "\xff\xfe\xc3 the and of in to \xe2\x82";
    char lang[4];
    ns_langdetect(d, bad, sizeof(bad) - 1, lang, sizeof(lang));
    ns_langdetect_destroy(d);
}

TEST(missing_models_are_a_clear_error)
{
    setenv("NS_TEXTCAT_DIR", "/nonexistent", 1);
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT(ns_langdetect_new(&err) == NULL);
    ASSERT(strstr(err.msg, "/nonexistent/fpdb.conf") != NULL);
}

NSTEST_MAIN
