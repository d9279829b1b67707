/* mailaddr.c: email address syntax, the one check behind jobs.yaml's
 * notify.email and smtp.from and behind every message sent. */
#include "ns/mailaddr.h"

#include <stdio.h>
#include <string.h>

const char *ns_mail_printable(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (; s != NULL && *s != '\0' && o + 5 < outlen && o < 80; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

static int is_atext(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", c));
}

static int is_ldh(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/* dot-atom local part "@" host name: no quoted strings, no comments, no
 * domain literals, no non-ASCII. Conservative on purpose. */
static int is_addr_spec(const char *a)
{
    const char *at = strchr(a, '@');
    if (at == NULL || at == a || at - a > 64 || strlen(a) > 254)
        return 0;
    for (const char *p = a; p < at; p++) {
        int dot = *p == '.';
        if (!is_atext((unsigned char)*p) && !dot)
            return 0;
        if (dot && (p == a || p + 1 == at || p[1] == '.'))
            return 0;
    }
    const char *label = at + 1;
    if (*label == '\0')
        return 0;
    for (const char *p = label;; p++) {
        if (*p == '.' || *p == '\0') {
            if (p == label || p - label > 63 || label[0] == '-' || p[-1] == '-')
                return 0;
            if (*p == '\0')
                return 1;
            label = p + 1;
        } else if (!is_ldh((unsigned char)*p)) {
            return 0;
        }
    }
}

static void trim_copy(char *out, size_t outlen, const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    snprintf(out, outlen, "%.*s", (int)len, s);
}

ns_err_t ns_mail_parse_address(const char *in, ns_mail_addr_t *out,
                               ns_error_t *err)
{
    char shown[128];
    out->addr[0] = out->name[0] = '\0';
    if (in == NULL || in[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT, "mail: empty address");
    for (const unsigned char *p = (const unsigned char *)in; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return ns_error_set(err, NS_ERR_PERMANENT,
                                "mail: address \"%s\" contains a control "
                                "character (CR/LF are never allowed)",
                                ns_mail_printable(in, shown, sizeof(shown)));
    const char *lt = strchr(in, '<'), *gt = strchr(in, '>');
    if (lt == NULL && gt == NULL) {
        trim_copy(out->addr, sizeof(out->addr), in, strlen(in));
    } else if (lt == NULL || gt == NULL || gt < lt || strchr(lt + 1, '<') ||
               strchr(gt + 1, '>') || gt[1 + strspn(gt + 1, " \t")] != '\0') {
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "mail: address \"%s\": '<' and '>' do not match",
                            ns_mail_printable(in, shown, sizeof(shown)));
    } else {
        if ((size_t)(lt - in) > NS_MAIL_MAX_NAME)
            return ns_error_set(err, NS_ERR_PERMANENT,
                                "mail: address \"%s\": display name longer "
                                "than %d bytes",
                                ns_mail_printable(in, shown, sizeof(shown)),
                                NS_MAIL_MAX_NAME);
        trim_copy(out->name, sizeof(out->name), in, (size_t)(lt - in));
        trim_copy(out->addr, sizeof(out->addr), lt + 1, (size_t)(gt - lt - 1));
    }
    if (!is_addr_spec(out->addr))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "mail: \"%s\" is not a plain address "
                            "(local-part@host.name)",
                            ns_mail_printable(in, shown, sizeof(shown)));
    return NS_OK;
}

ns_err_t ns_mail_check_address(const char *address, ns_error_t *err)
{
    ns_mail_addr_t a;
    ns_error_clear(err);
    return ns_mail_parse_address(address, &a, err);
}
