#include "mailfmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ns/mail.h"
#include "ns/mailaddr.h"
#include "ns/utf8.h"

#define MAIL_MAX_BODY ((size_t)256 << 20)
#define MAIL_MAX_SUBJECT 2000 /* bytes of sanitized UTF-8 */
/* RFC 2047: an encoded word is at most 75 characters and a line holding
 * one at most 76. A continuation line " =?UTF-8?B?" + base64 + "?=" leaves
 * 63, so 60 base64 characters, 45 bytes of UTF-8; the first word shares
 * its line with "Subject: ": 52 base64 characters, 39 bytes. */
#define MAIL_WORD_BYTES 45
#define MAIL_FIRST_WORD_BYTES 39

/* ---- header encoding --------------------------------------------------- */

/* Bytes of the UTF-8 sequence starting at s (input already sanitized). */
static size_t seq_len(unsigned char c)
{
    if (c >= 0xf0)
        return 4;
    if (c >= 0xe0)
        return 3;
    if (c >= 0xc0)
        return 2;
    return 1;
}

/* RFC 2047 B-encoded words, split between characters, never inside one. */
static ns_err_t add_encoded_words(ns_buf_t *b, const char *s)
{
    size_t len = strlen(s), pos = 0;
    ns_err_t rc = NS_OK;
    while (pos < len && rc == NS_OK) {
        size_t n = 0;
        while (pos + n < len) {
            size_t step = seq_len((unsigned char)s[pos + n]);
            if (n + step > (pos == 0 ? MAIL_FIRST_WORD_BYTES : MAIL_WORD_BYTES))
                break;
            n += step;
        }
        if (pos > 0)
            rc = ns_buf_adds(b, NS_MAILFMT_FOLD);
        if (rc == NS_OK)
            rc = ns_buf_adds(b, "=?UTF-8?B?");
        if (rc == NS_OK)
            rc = ns_buf_add_base64(b, s + pos, n);
        if (rc == NS_OK)
            rc = ns_buf_adds(b, "?=");
        pos += n;
    }
    return rc;
}

/* One line of text: invalid UTF-8 repaired, CR/LF/TAB turned into a space,
 * other C0/C1 controls and DEL dropped, at most max bytes. */
static char *clean_line(const char *s, size_t max)
{
    char *utf8 = ns_utf8_sanitize(s ? s : "", s ? strlen(s) : 0);
    if (utf8 == NULL)
        return NULL;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)utf8; *p; p++) {
        size_t step = seq_len(*p);
        if (o + step > max)
            break;
        if (*p == '\r' || *p == '\n' || *p == '\t') {
            utf8[o++] = ' ';
            continue;
        }
        if (*p < 0x20 || *p == 0x7f)
            continue;
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            p++;
            continue;
        }
        memmove(utf8 + o, p, step);
        o += step;
        p += step - 1;
    }
    utf8[o] = '\0';
    return utf8;
}

static int plain_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return 0;
    return n <= max && strstr(s, "=?") == NULL;
}

char *ns_mail_encode_subject(const char *subject)
{
    char *clean = clean_line(subject, MAIL_MAX_SUBJECT);
    if (clean == NULL)
        return NULL;
    /* "Subject: " + 900 stays well under the 998-octet line limit. */
    if (plain_ascii(clean, 900))
        return clean;
    ns_buf_t b;
    ns_buf_init(&b, NS_MAILFMT_MAX_HEADER);
    ns_err_t rc = add_encoded_words(&b, clean);
    free(clean);
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* "addr", "\"Name\" <addr>" or "=?UTF-8?B?...?= <addr>". */
ns_err_t ns_mailfmt_add_mailbox(ns_buf_t *b, const ns_mail_addr_t *a)
{
    if (a->name[0] == '\0')
        return ns_buf_adds(b, a->addr);
    char *name = clean_line(a->name, NS_MAIL_MAX_NAME);
    if (name == NULL)
        return NS_ERR_NOMEM;
    /* Quotes and backslashes would need quoted-pair escapes: drop them. */
    size_t o = 0;
    for (size_t i = 0; name[i] != '\0'; i++)
        if (name[i] != '"' && name[i] != '\\')
            name[o++] = name[i];
    name[o] = '\0';
    ns_err_t rc;
    if (plain_ascii(name, NS_MAIL_MAX_NAME))
        rc = ns_buf_addf(b, "\"%s\" <%s>", name, a->addr);
    else {
        rc = add_encoded_words(b, name);
        if (rc == NS_OK)
            rc = ns_buf_addf(b, " <%s>", a->addr);
    }
    free(name);
    return rc;
}

/* ---- message parts ----------------------------------------------------- */

ns_err_t ns_mailfmt_add_date(ns_buf_t *b)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                       "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                         "May", "Jun", "Jul", "Aug",
                                         "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return ns_buf_addf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000",
                       days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                       tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

ns_err_t ns_mailfmt_add_message_id(ns_buf_t *b, const ns_mail_addr_t *from)
{
    uint64_t rnd[2] = {0, 0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rnd[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        rnd[1] = (uint64_t)(uintptr_t)&ts;
    }
    return ns_buf_addf(b, "Message-ID: <%016llx.%016llx@%s>",
                       (unsigned long long)rnd[0], (unsigned long long)rnd[1],
                       strchr(from->addr, '@') + 1);
}

/* The body with every line ending as CRLF: curl's quoted-printable encoder
 * only knows CRLF as a line break and would encode a bare LF as =0A. */
char *ns_mailfmt_body_crlf(const char *text, size_t *len)
{
    char *utf8 = ns_utf8_sanitize(text ? text : "", text ? strlen(text) : 0);
    if (utf8 == NULL)
        return NULL;
    ns_buf_t b;
    ns_buf_init(&b, MAIL_MAX_BODY);
    ns_err_t rc = ns_buf_add(&b, "", 0);
    for (const char *p = utf8; *p != '\0' && rc == NS_OK; p++) {
        if (*p == '\r' && p[1] == '\n')
            continue;
        if (*p == '\r' || *p == '\n')
            rc = ns_buf_add(&b, "\r\n", 2);
        else
            rc = ns_buf_add(&b, p, 1);
    }
    free(utf8);
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return ns_buf_take(&b);
}

static int is_filename_safe(unsigned char c)
{
    return c >= 0x20 && c != 0x7f && strchr("\"\\/:*?<>|;%", c) == NULL;
}

/* Splits a file name into a plain ASCII fallback (every unsafe or
 * non-ASCII character as '_') and its RFC 2231 percent-encoded UTF-8. */
static ns_err_t file_names(const char *base, ns_buf_t *ascii, ns_buf_t *ext,
                           int *non_ascii)
{
    ns_err_t rc = ns_buf_add(ascii, "", 0);
    if (rc == NS_OK)
        rc = ns_buf_add(ext, "", 0);
    *non_ascii = 0;
    for (const unsigned char *p = (const unsigned char *)base;
         *p && rc == NS_OK;) {
        size_t step = seq_len(*p);
        unsigned char c = *p;
        if (c >= 0x80 || !is_filename_safe(c))
            c = '_';
        *non_ascii |= *p >= 0x80;
        /* Leading dots would make a hidden file, or "..". */
        if (c == '.' && ascii->len == 0)
            c = '_';
        rc = ns_buf_add(ascii, &c, 1);
        for (size_t i = 0; i < step && rc == NS_OK; i++) {
            unsigned char e = p[i] < 0x80 ? c : p[i];
            if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
                (e >= '0' && e <= '9') || strchr("!#$&+-.^_`|~", e))
                rc = ns_buf_add(ext, &e, 1);
            else
                rc = ns_buf_addf(ext, "%%%02X", e);
        }
        p += step;
    }
    return rc;
}

static int is_ldh(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/* type/subtype of RFC 2045 token characters, no parameters. */
static int is_mime_type(const char *t)
{
    const char *slash = strchr(t, '/');
    if (slash == NULL || slash == t || slash[1] == '\0' || strlen(t) > 127)
        return 0;
    for (const char *p = t; *p; p++)
        if (p != slash && !is_ldh((unsigned char)*p) &&
            strchr("!#$&^_.+", *p) == NULL)
            return 0;
    return 1;
}

ns_err_t ns_mailfmt_attachment_headers(const char *filename,
                                       const char *mime_type,
                                       char **content_type, char **disposition,
                                       ns_error_t *err)
{
    const char *type = mime_type ? mime_type : "application/octet-stream";
    char shown[128];
    *content_type = *disposition = NULL;
    if (!is_mime_type(type))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "mail: attachment type \"%s\" is not a bare "
                            "type/subtype",
                            ns_mail_printable(type, shown, sizeof(shown)));
    char *name = clean_line(filename, NS_MAIL_MAX_NAME);
    if (name == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    const char *base = name;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    if (*base == '\0')
        base = "attachment";
    ns_buf_t ascii, ext, ct, cd;
    ns_buf_init(&ascii, NS_MAILFMT_MAX_HEADER);
    ns_buf_init(&ext, NS_MAILFMT_MAX_HEADER);
    ns_buf_init(&ct, NS_MAILFMT_MAX_HEADER);
    ns_buf_init(&cd, NS_MAILFMT_MAX_HEADER);
    int non_ascii = 0;
    ns_err_t rc = file_names(base, &ascii, &ext, &non_ascii);
    free(name);
    /* Both filename= and filename*= in one header is a duplicate parameter
     * to many parsers (Python's email among them): the ASCII fallback goes
     * to Content-Type's name= instead, which old readers look at. */
    if (rc == NS_OK)
        rc = ns_buf_addf(&ct, "%s; name=\"%s\"", type, ascii.data);
    if (rc == NS_OK && non_ascii)
        rc = ns_buf_addf(&cd,
                         "Content-Disposition: attachment; "
                         "filename*=UTF-8''%s",
                         ext.data);
    else if (rc == NS_OK)
        rc =
            ns_buf_addf(&cd, "Content-Disposition: attachment; filename=\"%s\"",
                        ascii.data);
    ns_buf_free(&ascii);
    ns_buf_free(&ext);
    if (rc != NS_OK) {
        ns_buf_free(&ct);
        ns_buf_free(&cd);
        return ns_error_set(err, NS_ERR_NOMEM, "mail: out of memory");
    }
    *content_type = ns_buf_take(&ct);
    *disposition = ns_buf_take(&cd);
    return NS_OK;
}
