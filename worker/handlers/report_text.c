/* report_text.c: cleaning, escaping and measuring the text of report cells
 * (see report_text.h). */
#include "report_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "ns/buf.h"
#include "ns/utf8.h"

#define INPUT_MAX_BYTES (256 * 1024)

/* Characters a cell must not hold: C0 controls (tab and newline stay in
 * multi-line text), DEL, C1 controls, and U+FFFE/U+FFFF, which XML forbids. */
static int is_removed(utf8proc_int32_t cp, int multiline)
{
    if (multiline && (cp == '\t' || cp == '\n'))
        return 0;
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xFFFE ||
           cp == 0xFFFF;
}

static void trim_end(ns_buf_t *b)
{
    while (b->len > 0 &&
           (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\n' ||
            b->data[b->len - 1] == '\t'))
        b->data[--b->len] = '\0';
}

char *ns_report_text_clean(const char *s, size_t max_chars, size_t max_lines)
{
    int multiline = max_lines > 1;
    /* Only the beginning can be shown: a huge input costs no more. */
    size_t len = s ? strnlen(s, INPUT_MAX_BYTES) : 0;
    char *valid = ns_utf8_sanitize(s ? s : "", len);
    if (valid == NULL)
        return NULL;
    ns_buf_t b;
    ns_buf_init(&b, len * 3 + 16);
    size_t chars = 0, lines = 1, pos = 0, vlen = strlen(valid);
    int full = 0, cut = 0, space_pending = 0;
    ns_err_t rc = NS_OK;
    while (pos < vlen && rc == NS_OK) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)valid + pos,
                             (utf8proc_ssize_t)(vlen - pos), &cp);
        const char *at = valid + pos;
        pos += (size_t)n;
        if (!multiline && (cp == '\t' || cp == '\n' || cp == '\r')) {
            space_pending = b.len > 0;
            continue;
        }
        if (is_removed(cp, multiline))
            continue;
        if (cp == '\n' && (b.len == 0 || b.data[b.len - 1] == '\n'))
            continue; /* blank lines would use up the few lines shown */
        if ((cp == '\n' && lines == max_lines) ||
            chars + space_pending >= max_chars)
            full = 1;
        /* Only what is visible beyond the limit makes it a cut. */
        if (full) {
            if (cp == ' ' || cp == '\t' || cp == '\n')
                continue;
            cut = 1;
            break;
        }
        lines += cp == '\n';
        if (space_pending) {
            rc = ns_buf_add(&b, " ", 1);
            chars++;
            space_pending = 0;
        }
        if (rc == NS_OK)
            rc = ns_buf_add(&b, at, (size_t)n);
        chars++;
    }
    free(valid);
    trim_end(&b);
    if (rc == NS_OK && cut)
        rc = ns_buf_adds(&b, "\xE2\x80\xA6"); /* … */
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* Excel reads "_xHHHH_" as U+HHHH; "_x005F_" (an escaped "_") in front
 * keeps the text literal. */
char *ns_report_text_escape(const char *s)
{
    ns_buf_t b;
    ns_buf_init(&b, strlen(s) * 7 + 1);
    ns_err_t rc = NS_OK;
    for (const char *p = s; *p != '\0' && rc == NS_OK; p++) {
        if (p[0] == '_' && p[1] == 'x' && isxdigit((unsigned char)p[2]) &&
            isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4]) &&
            isxdigit((unsigned char)p[5]) && p[6] == '_')
            rc = ns_buf_adds(&b, "_x005F");
        if (rc == NS_OK)
            rc = ns_buf_add(&b, p, 1);
    }
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* Lines a line of width w takes in a column wrap characters wide. */
static size_t wrapped(size_t w, size_t wrap)
{
    return w == 0 ? 1 : (w + wrap - 1) / wrap;
}

size_t ns_report_text_measure(const char *s, size_t wrap, size_t *rows)
{
    size_t widest = 0, line = 0, pos = 0, len = strlen(s);
    *rows = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos,
                             (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0)
            break;
        pos += (size_t)n;
        if (cp == '\n') {
            *rows += wrapped(line, wrap);
            line = 0;
            continue;
        }
        int w = utf8proc_charwidth(cp);
        line += w > 0 ? (size_t)w : 0;
        if (line > widest)
            widest = line;
    }
    *rows += wrapped(line, wrap);
    return widest;
}
