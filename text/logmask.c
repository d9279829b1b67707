/* logmask.c: the masking tokenizer of the log template parser. One pass
 * over the line: split on whitespace, peel punctuation off each token,
 * classify what is left by hand-written matchers (no regular expressions:
 * this runs for every line of the regular path), write the masked token
 * into the output buffer, and fold the tokens of a split timestamp ("Dec",
 * "3", "10:50:33") into one <TS>. */
#include "logmask.h"

#include <string.h>

enum {
    C_DIGIT = 1,
    C_HEXL = 2,  /* a-f A-F */
    C_ALPHA = 4, /* ASCII letters */
    C_SPACE = 8,
    C_LEAD = 16,  /* peeled off the front: ( [ { < " ' ` */
    C_TRAIL = 32, /* peeled off the end: ) ] } > " ' ` , ; : . ! ? */
    C_SEG = 64,   /* inside a piece of a cut token: alnum . _ - + UTF-8 */
    C_MARK = 128, /* : . / \\ @ = ]: without them nor digits, a token is a
                     plain word */
};

static const uint8_t cc[256] = {
    0,   0,  0,  0,  0,  0,  0,  0,  0,  8,  8,   8,  8,   8,   0,   0,
    0,   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,   0,  0,   0,   0,   0,
    8,   32, 48, 0,  0,  0,  0,  48, 16, 32, 0,   64, 32,  64,  224, 128,
    65,  65, 65, 65, 65, 65, 65, 65, 65, 65, 160, 32, 16,  128, 32,  32,
    128, 70, 70, 70, 70, 70, 70, 68, 68, 68, 68,  68, 68,  68,  68,  68,
    68,  68, 68, 68, 68, 68, 68, 68, 68, 68, 68,  16, 128, 160, 0,   64,
    48,  70, 70, 70, 70, 70, 70, 68, 68, 68, 68,  68, 68,  68,  68,  68,
    68,  68, 68, 68, 68, 68, 68, 68, 68, 68, 68,  16, 0,   32,  0,   0,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
    64,  64, 64, 64, 64, 64, 64, 64, 64, 64, 64,  64, 64,  64,  64,  64,
};

#define CC(c) cc[(unsigned char)(c)]
#define IS_DIGIT(c) ((unsigned)(c) - '0' < 10u)
#define IS_HEX(c) (CC(c) & (C_DIGIT | C_HEXL))

/* What a token was, for folding split timestamps. */
enum {
    K_PLAIN, /* letters and such only */
    K_WORD,  /* no digits, but : . / @ = or ] */
    K_OTHER,
    K_DAY,   /* 1-31, masked <NUM> */
    K_YEAR,  /* 19xx, 20xx, masked <NUM> */
    K_TZ,    /* +hhmm, -hh:mm, masked <NUM> */
    K_MONTH, /* Jan..Dec */
    K_WDAY,  /* Mon..Sun */
    K_TIME,  /* 10:50:33, masked <TS> */
    K_DATE,  /* 2024-12-03, masked <TS> */
    K_TS,    /* a whole timestamp */
    K_TSM,   /* a folded "Dec 3 10:50:33" (a year may follow) */
};

/* The placeholders, by the classifier's answer. */
enum {
    P_NONE,
    P_NUM,
    P_HEX,
    P_UUID,
    P_IP,
    P_PATH,
    P_DUR,
    P_TS,
    P_EMAIL,
    P_URL
};
static const struct {
    const char *s;
    size_t len;
} placeholder[] = {
    {"", 0},       {"<NUM>", 5}, {"<HEX>", 5}, {"<UUID>", 6},  {"<IP>", 4},
    {"<PATH>", 6}, {"<DUR>", 5}, {"<TS>", 4},  {"<EMAIL>", 7}, {"<URL>", 5},
};

/* Consecutive digits from s[i], at most n - i. */
static size_t digits(const char *s, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && IS_DIGIT(s[j]))
        j++;
    return j - i;
}

/* The length of digits[.digits] at s[i], or 0 (a dot must have digits). */
static size_t decimal(const char *s, size_t n, size_t i)
{
    size_t j = i + digits(s, n, i);
    if (j == i)
        return 0;
    if (j < n && s[j] == '.') {
        size_t f = digits(s, n, j + 1);
        if (f == 0)
            return 0;
        j += 1 + f;
    }
    return j - i;
}

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS_HEX(s[i]))
            return 0;
    return 1;
}

/* [+-]digits[.digits][e[+-]digits] */
static int is_number(const char *s, size_t n)
{
    size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    size_t d = decimal(s, n, i);
    if (d == 0)
        return 0;
    i += d;
    if (i + 1 < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        d = digits(s, n, j);
        if (d == 0)
            return 0;
        i = j + d;
    }
    return i == n;
}

/* Seconds, ms, us or ns since 1970 in this century's range: 10, 13, 16 or
 * 19 digits starting with 1, optionally with a fraction. */
static int is_epoch(const char *s, size_t n)
{
    size_t d = digits(s, n, 0);
    if (s[0] != '1' || (d != 10 && d != 13 && d != 16 && d != 19))
        return 0;
    if (d == n)
        return 1;
    return s[d] == '.' && d + 1 < n && digits(s, n, d + 1) == n - d - 1;
}

/* 1.2.3 and longer runs of dotted numbers (versions, OIDs). */
static int is_dotted(const char *s, size_t n)
{
    size_t i = 0, parts = 0;
    while (i < n) {
        size_t d = digits(s, n, i);
        if (d == 0)
            return 0;
        i += d;
        parts++;
        if (i == n)
            break;
        if (s[i] != '.')
            return 0;
        i++;
        if (i == n)
            return 0;
    }
    return parts >= 3;
}

/* a.b.c.d[:port][/prefix] */
static int is_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int octet = 0; octet < 4; octet++) {
        size_t d = digits(s, n, i);
        if (d == 0 || d > 3)
            return 0;
        unsigned v = 0;
        for (size_t k = 0; k < d; k++)
            v = v * 10 + (unsigned)(s[i + k] - '0');
        if (v > 255)
            return 0;
        i += d;
        if (octet < 3) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < n && s[i] == ':') {
        size_t d = digits(s, n, i + 1);
        if (d == 0 || d > 5)
            return 0;
        i += 1 + d;
    }
    if (i < n && s[i] == '/') {
        size_t d = digits(s, n, i + 1);
        if (d == 0 || d > 2)
            return 0;
        i += 1 + d;
    }
    return i == n;
}

/* Hex groups and colons with "::" or all eight groups, an optional
 * embedded IPv4 tail and %zone. */
static int is_ipv6(const char *s, size_t n)
{
    const char *zone = memchr(s, '%', n);
    size_t end = zone ? (size_t)(zone - s) : n;
    size_t colons = 0, double_colon = 0;
    for (size_t i = 0; i < end; i++) {
        if (s[i] == ':') {
            colons++;
            if (i + 1 < end && s[i + 1] == ':')
                double_colon = 1;
        } else if (!IS_HEX(s[i]) && s[i] != '.') {
            return 0;
        }
    }
    return colons >= 2 && (double_colon || colons == 7);
}

/* xx:xx:xx:xx:xx:xx or with dashes. */
static int is_mac(const char *s, size_t n)
{
    if (n != 17)
        return 0;
    for (size_t i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':' && s[i] != '-')
                return 0;
        } else if (!IS_HEX(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* 8-4-4-4-12 hex digits. */
static int is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!IS_HEX(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Z, +hh, +hhmm or +hh:mm at s[i]: the end, or 0 when none fits. */
static size_t parse_zone(const char *s, size_t n, size_t i)
{
    if (i < n && s[i] == 'Z')
        return i + 1;
    if (i >= n || (s[i] != '+' && s[i] != '-') || digits(s, n, i + 1) < 2)
        return 0;
    size_t d = digits(s, n, i + 1);
    if (d == 2 && i + 3 < n && s[i + 3] == ':' && digits(s, n, i + 4) == 2)
        return i + 6;
    return d == 2 || d == 4 ? i + 1 + d : 0;
}

/* H:MM, HH:MM[:SS[.frac]][zone] from s[i]: the end, or 0. */
static size_t parse_time(const char *s, size_t n, size_t i)
{
    size_t d = digits(s, n, i);
    if (d < 1 || d > 2 || i + d >= n || s[i + d] != ':')
        return 0;
    i += d + 1;
    if (digits(s, n, i) != 2)
        return 0;
    i += 2;
    if (i < n && s[i] == ':') {
        if (digits(s, n, i + 1) != 2)
            return 0;
        i += 3;
        if (i < n && (s[i] == '.' || s[i] == ',')) {
            d = digits(s, n, i + 1);
            if (d == 0)
                return 0;
            i += 1 + d;
        }
    }
    if (i < n) {
        size_t z = parse_zone(s, n, i);
        if (z != 0)
            i = z;
    }
    return i;
}

static int month_at(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int m = 0; m < 12; m++)
        if (memcmp(s, months + 3 * m, 3) == 0)
            return 1;
    return 0;
}

static int weekday_at(const char *s)
{
    static const char days[] = "MonTueWedThuFriSatSun";
    for (int d = 0; d < 7; d++)
        if (memcmp(s, days + 3 * d, 3) == 0)
            return 1;
    return 0;
}

/* Dates: 2024-12-03 (or with / .), then T or _ and a time for ISO 8601;
 * 03/Dec/2024:10:50:33 (web servers). */
static int classify_date(const char *s, size_t n, int *kind)
{
    if (n >= 10 && digits(s, n, 0) == 4 &&
        (s[4] == '-' || s[4] == '/' || s[4] == '.')) {
        if (digits(s, n, 5) != 2 || s[7] != s[4] || digits(s, n, 8) != 2)
            return 0;
        if (n == 10) {
            *kind = K_DATE;
            return 1;
        }
        if ((s[10] == 'T' || s[10] == '_') && parse_time(s, n, 11) == n) {
            *kind = K_TS;
            return 1;
        }
        return 0;
    }
    if (n >= 20 && digits(s, n, 0) == 2 && s[2] == '/' && month_at(s + 3) &&
        s[6] == '/' && digits(s, n, 7) == 4 && s[11] == ':' &&
        parse_time(s, n, 12) == n) {
        *kind = K_TS;
        return 1;
    }
    return 0;
}

/* (digits[.digits] unit)+ */
static int is_duration(const char *s, size_t n)
{
    static const char *const units[] = {"mins", "min", "secs",      "sec",
                                        "ms",   "us",  "\xc2\xb5s", "ns",
                                        "s",    "m",   "h",         "d"};
    size_t i = 0;
    while (i < n) {
        size_t d = decimal(s, n, i);
        if (d == 0)
            return 0;
        i += d;
        size_t u = 0;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            size_t ul = strlen(units[k]);
            if (ul <= n - i && memcmp(s + i, units[k], ul) == 0 &&
                (i + ul == n || IS_DIGIT(s[i + ul]))) {
                u = ul;
                break;
            }
        }
        if (u == 0)
            return 0;
        i += u;
    }
    return 1;
}

static int is_url(const char *s, size_t n)
{
    if (!(CC(s[0]) & C_ALPHA))
        return 0;
    size_t i = 1;
    while (i < n && ((CC(s[i]) & (C_ALPHA | C_DIGIT)) || s[i] == '+' ||
                     s[i] == '.' || s[i] == '-'))
        i++;
    return i + 3 < n && memcmp(s + i, "://", 3) == 0;
}

static int is_path(const char *s, size_t n)
{
    if (s[0] == '/')
        return n > 1;
    if (n > 2 && s[0] == '.' && s[1] == '/')
        return 1;
    if (n > 3 && s[0] == '.' && s[1] == '.' && s[2] == '/')
        return 1;
    if (n > 2 && s[0] == '~' && s[1] == '/')
        return 1;
    return n > 3 && (CC(s[0]) & C_ALPHA) && s[1] == ':' && s[2] == '\\';
}

static int is_email(const char *s, size_t n)
{
    size_t at = n;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@') {
            if (at != n)
                return 0;
            at = i;
        } else if (!(CC(s[i]) & (C_ALPHA | C_DIGIT)) &&
                   strchr("._%+-", s[i]) == NULL) {
            return 0;
        }
    }
    if (at == 0 || at >= n - 1)
        return 0;
    const char *dot = memchr(s + at + 1, '.', n - at - 1);
    return dot != NULL && dot > s + at + 1 && dot < s + n - 1;
}

/* The placeholder of a whole token core s[0..n), or P_NONE; *kind says
 * what it was for the timestamp folding. */
static int classify(const char *s, size_t n, int *kind)
{
    uint8_t seen = 0;
    for (size_t i = 0; i < n; i++)
        seen |= CC(s[i]);
    if (!(seen & (C_DIGIT | C_MARK))) {
        *kind = K_PLAIN; /* the common case */
        if (n == 3 && month_at(s))
            *kind = K_MONTH;
        else if (n == 3 && weekday_at(s))
            *kind = K_WDAY;
        return P_NONE;
    }
    *kind = K_OTHER;
    int digit = 0, colon = 0, dot = 0, slash = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        digit |= IS_DIGIT(s[i]);
        colon |= s[i] == ':';
        dot |= s[i] == '.';
        slash |= s[i] == '/' || s[i] == '\\';
        at |= s[i] == '@';
    }
    if (colon && slash && is_url(s, n))
        return P_URL;
    if (slash && is_path(s, n))
        return P_PATH;
    if (at && is_email(s, n))
        return P_EMAIL;
    if (!digit) {
        *kind = K_WORD;
        if (n == 3 && month_at(s))
            *kind = K_MONTH;
        else if (n == 3 && weekday_at(s))
            *kind = K_WDAY;
        return P_NONE;
    }
    if (n == 36 && is_uuid(s, n))
        return P_UUID;
    if (n == 17 && is_mac(s, n))
        return P_HEX;
    if (dot && is_ipv4(s, n))
        return P_IP;
    if (colon && is_ipv6(s, n))
        return P_IP;
    if (colon && parse_time(s, n, 0) == n) {
        *kind = K_TIME;
        return P_TS;
    }
    if (n >= 10 && classify_date(s, n, kind))
        return P_TS;
    if ((s[0] == '+' || s[0] == '-') && n > 1 && parse_zone(s, n, 0) == n &&
        n >= 5) {
        *kind = K_TZ;
        return P_NUM;
    }
    if (is_epoch(s, n)) {
        *kind = K_TS;
        return P_TS;
    }
    if (is_number(s, n)) {
        unsigned v = n <= 2 ? (unsigned)(s[0] - '0') : 0;
        if (n == 2)
            v = v * 10 + (unsigned)(s[1] - '0');
        if (n <= 2 && digits(s, n, 0) == n && v >= 1 && v <= 31)
            *kind = K_DAY;
        else if (n == 4 && digits(s, n, 0) == 4 &&
                 (memcmp(s, "19", 2) == 0 || memcmp(s, "20", 2) == 0))
            *kind = K_YEAR;
        return P_NUM;
    }
    if (dot && is_dotted(s, n))
        return P_NUM;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') &&
        all_hex(s + 2, n - 2))
        return P_HEX;
    if (n >= 8 && all_hex(s, n))
        return P_HEX;
    if (is_duration(s, n))
        return P_DUR;
    return P_NONE;
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

static char *put_placeholder(char *o, int p)
{
    return put(o, placeholder[p].s, placeholder[p].len);
}

/* A token with digits that is no kind as a whole: its pieces between
 * punctuation ("sshd[1234]:" -> "sshd", "1234") are masked one by one. */
static char *put_pieces(char *o, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (!(CC(s[i]) & C_SEG)) {
            *o++ = s[i++];
            continue;
        }
        size_t j = i;
        while (j < n && (CC(s[j]) & C_SEG))
            j++;
        int kind;
        int p = classify(s + i, j - i, &kind);
        o = p != P_NONE ? put_placeholder(o, p) : put(o, s + i, j - i);
        i = j;
    }
    return o;
}

/* key=value with a key of [A-Za-z0-9_.-]: the value masked by its kind,
 * else <*> (or left, with keep_kv). NULL, having written nothing, when s is
 * not key=value. */
static char *put_key_value(char *o, const char *s, size_t n, int keep_kv)
{
    const char *eq = memchr(s, '=', n);
    if (eq == NULL || eq == s)
        return NULL;
    for (const char *k = s; k < eq; k++)
        if (!(CC(*k) & (C_ALPHA | C_DIGIT)) && *k != '_' && *k != '.' &&
            *k != '-')
            return NULL;
    size_t klen = (size_t)(eq - s) + 1, vlen = n - klen;
    o = put(o, s, klen);
    if (vlen == 0)
        return o;
    int kind;
    int p = classify(eq + 1, vlen, &kind);
    if (p != P_NONE)
        return put_placeholder(o, p);
    if (!keep_kv)
        return put(o, "<*>", 3);
    return put_pieces(o, eq + 1, vlen);
}

/* Folds the last token with the ones before it when together they are one
 * timestamp: [Mon] Dec 3 10:50:33 [2024], 3 Dec 2024 10:50:33,
 * 2024-12-03 10:50:33, a time and its +hhmm. The folded token keeps the first
 * one's prefix and the last one's suffix. */
static size_t fold_timestamp(ns_logtok_t *t, size_t nt, char **o)
{
    size_t k = nt - 1, start = k;
    const ns_logtok_t *cur = &t[k];
    int kind = K_TS;
    if (cur->pre != 0 || cur->suf == 255 || k == 0 || t[k - 1].suf != 0)
        return nt;
    switch (cur->kind) {
    case K_TIME:
        if (k >= 2 && t[k - 1].kind == K_DAY && t[k - 1].pre == 0 &&
            t[k - 2].kind == K_MONTH && t[k - 2].suf == 0) {
            start = k - 2;
            kind = K_TSM;
            if (k >= 3 && t[k - 3].kind == K_WDAY && t[k - 3].suf == 0 &&
                t[k - 2].pre == 0)
                start = k - 3;
        } else if (k >= 3 && t[k - 1].kind == K_YEAR && t[k - 1].pre == 0 &&
                   t[k - 2].kind == K_MONTH && t[k - 2].pre == 0 &&
                   t[k - 2].suf == 0 && t[k - 3].kind == K_DAY &&
                   t[k - 3].suf == 0) {
            start = k - 3; /* 03 Dec 2026 11:06:34.677 (Redis) */
        } else if (t[k - 1].kind == K_DATE) {
            start = k - 1;
        }
        break;
    case K_YEAR:
        if (t[k - 1].kind == K_TSM)
            start = k - 1;
        break;
    case K_TZ:
        if (t[k - 1].kind == K_TIME || t[k - 1].kind == K_TS ||
            t[k - 1].kind == K_TSM)
            start = k - 1;
        break;
    default: break;
    }
    if (start == k || t[start].pre == 255)
        return nt;
    /* From the prefix's end to the suffix there are at least 8 bytes (two
     * placeholders or longer), so "<TS>" never overwrites the suffix. */
    char *dst = (char *)t[start].s + t[start].pre;
    size_t suf = cur->suf;
    memcpy(dst, "<TS>", 4);
    memmove(dst + 4, cur->s + cur->len - suf, suf);
    *o = dst + 4 + suf;
    t[start].len = (uint32_t)(*o - t[start].s);
    t[start].suf = (uint8_t)suf;
    t[start].kind = (uint8_t)kind;
    t[start].has_digit = 0;
    t[start].hash = ns_logmask_hash(t[start].s, t[start].len);
    return start + 1;
}

/* The masked core of a token at w; *kind as classify() says. bracketed:
 * the token opened with '[' ([::1]:8080). */
static char *put_core(char *w, const char *core, size_t clen, int bracketed,
                      int keep_kv, int *kind)
{
    int p = classify(core, clen, kind);
    if (p != P_NONE)
        return put_placeholder(w, p);
    if (*kind == K_PLAIN || *kind == K_MONTH || *kind == K_WDAY)
        return put(w, core, clen);
    const char *bracket = bracketed ? memchr(core, ']', clen) : NULL;
    int bkind;
    if (bracket != NULL &&
        classify(core, (size_t)(bracket - core), &bkind) == P_IP) {
        *kind = K_OTHER;
        w = put_placeholder(w, P_IP);
        return put_pieces(w, bracket, clen - (size_t)(bracket - core));
    }
    char *kv = NULL;
    if (memchr(core, '=', clen) != NULL)
        kv = put_key_value(w, core, clen, keep_kv);
    if (kv != NULL) {
        *kind = K_OTHER;
        return kv;
    }
    /* Digits but no kind as a whole: mask the pieces. */
    return *kind == K_OTHER ? put_pieces(w, core, clen) : put(w, core, clen);
}

/* One whitespace-free token s[0..n) appended at *o as t. */
static void put_token(const char *s, size_t n, int keep_kv, char **o,
                      ns_logtok_t *t)
{
    size_t pre = 0, suf = 0;
    while (pre < n && (CC(s[pre]) & C_LEAD))
        pre++;
    while (suf < n - pre && (CC(s[n - 1 - suf]) & C_TRAIL))
        suf++;
    const char *core = s + pre;
    size_t clen = n - pre - suf;
    char *start = *o, *w = put(*o, s, pre);
    int kind = K_PLAIN;
    if (clen > 0)
        w = put_core(w, core, clen, pre > 0 && s[pre - 1] == '[', keep_kv,
                     &kind);
    w = put(w, s + n - suf, suf);
    t->s = start;
    t->len = (uint32_t)(w - start);
    t->kind = (uint8_t)kind;
    t->pre = (uint8_t)(pre < 255 ? pre : 255);
    t->suf = (uint8_t)(suf < 255 ? suf : 255);
    uint64_t h = 0xcbf29ce484222325ULL; /* ns_logmask_hash(), and digits */
    uint8_t seen = 0;
    for (const char *c = start; c < w; c++) {
        seen |= CC(*c);
        h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
    }
    t->has_digit = seen & C_DIGIT;
    t->hash = h;
    *o = w;
}

size_t ns_logmask(const char *line, size_t len, int keep_kv, char *out,
                  ns_logtok_t *toks)
{
    size_t nt = 0, i = 0;
    char *o = out;
    while (i < len) {
        while (i < len && (CC(line[i]) & C_SPACE))
            i++;
        if (i == len)
            break;
        size_t j = i;
        while (j < len && !(CC(line[j]) & C_SPACE))
            j++;
        put_token(line + i, j - i, keep_kv, &o, &toks[nt]);
        nt = fold_timestamp(toks, nt + 1, &o);
        i = j;
    }
    return nt;
}
