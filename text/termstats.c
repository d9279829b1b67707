#include "ns/termstats.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define MAX_LANGS 255
#define LANG_MAX 16
#define MAGIC "NSTS\x01"
#define MAGIC_LEN 5

typedef struct entry {
    uint64_t hash; /* 0: empty slot */
    uint32_t key;  /* offset of the term in the arena */
    uint32_t len;
    uint32_t lang;
    int64_t df, count, nlogn;
} entry_t;

typedef struct table {
    entry_t *slots;
    size_t cap, used; /* used: occupied slots (live or zeroed) */
} table_t;

typedef struct arena {
    char *data;
    size_t len, cap;
} arena_t;

typedef struct lang {
    char name[LANG_MAX + 1];
    int64_t docs, words;
} lang_t;

/* The current document: its distinct words and their occurrences. */
typedef struct doc_word {
    uint64_t hash;
    uint32_t key, len;
    int64_t n;
} doc_word_t;

struct ns_termstats {
    table_t terms;
    arena_t keys;
    lang_t langs[MAX_LANGS];
    size_t n_langs;
    /* the document being counted */
    bool in_doc;
    uint32_t doc_lang;
    int64_t doc_words;
    doc_word_t *dw;
    size_t dw_cap, dw_used;
    uint32_t *dw_slots; /* the slots in use, dw_used of them */
    arena_t doc_keys;
};

static uint64_t hash_of(uint32_t lang, const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ lang;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

static ns_err_t oom(ns_error_t *err)
{
    return ns_error_set(err, NS_ERR_NOMEM, "term statistics: out of memory");
}

static bool arena_add(arena_t *a, const char *s, size_t len, uint32_t *off)
{
    if (a->len + len + 1 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        while (cap < a->len + len + 1)
            cap *= 2;
        if (cap > UINT32_MAX)
            return false;
        char *d = realloc(a->data, cap);
        if (d == NULL)
            return false;
        a->data = d;
        a->cap = cap;
    }
    memcpy(a->data + a->len, s, len);
    a->data[a->len + len] = '\0';
    *off = (uint32_t)a->len;
    a->len += len + 1;
    return true;
}

ns_termstats_t *ns_termstats_new(void)
{
    return calloc(1, sizeof(ns_termstats_t));
}

void ns_termstats_destroy(ns_termstats_t *s)
{
    if (s == NULL)
        return;
    free(s->terms.slots);
    free(s->keys.data);
    free(s->dw);
    free(s->dw_slots);
    free(s->doc_keys.data);
    free(s);
}

static int lang_index(ns_termstats_t *s, const char *lang, bool add)
{
    char name[LANG_MAX + 1];
    snprintf(name, sizeof(name), "%s", lang ? lang : "");
    for (size_t i = 0; i < s->n_langs; i++)
        if (strcmp(s->langs[i].name, name) == 0)
            return (int)i;
    if (!add || s->n_langs == MAX_LANGS)
        return -1;
    lang_t *l = &s->langs[s->n_langs];
    memset(l, 0, sizeof(*l));
    memcpy(l->name, name, sizeof(name));
    return (int)s->n_langs++;
}

static int lang_find(const ns_termstats_t *s, const char *lang)
{
    return lang_index((ns_termstats_t *)s, lang, false);
}

/* The slot of (lang, term), or the empty slot where it would go. */
static entry_t *find_slot(const table_t *t, const arena_t *keys, uint64_t h,
                          uint32_t lang, const char *term, size_t len)
{
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        entry_t *e = &t->slots[i];
        if (e->hash == 0 || (e->hash == h && e->lang == lang && e->len == len &&
                             memcmp(keys->data + e->key, term, len) == 0))
            return e;
    }
}

static bool grow(ns_termstats_t *s)
{
    table_t *t = &s->terms;
    size_t cap = t->cap ? t->cap * 2 : 1024;
    entry_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return false;
    size_t used = 0;
    for (size_t i = 0; i < t->cap; i++) {
        entry_t *e = &t->slots[i];
        if (e->hash == 0 || (e->df == 0 && e->count == 0 && e->nlogn == 0))
            continue; /* empty, or emptied by a subtraction */
        size_t j = e->hash & (cap - 1);
        while (slots[j].hash != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = *e;
        used++;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->used = used;
    return true;
}

/* Adds to the statistics of (lang, term), creating it. */
static ns_err_t add_term(ns_termstats_t *s, uint32_t lang, const char *term,
                         size_t len, int64_t df, int64_t count, int64_t nlogn,
                         ns_error_t *err)
{
    table_t *t = &s->terms;
    if ((t->used + 1) * 4 > t->cap * 3 && !grow(s))
        return oom(err);
    uint64_t h = hash_of(lang, term, len);
    entry_t *e = find_slot(t, &s->keys, h, lang, term, len);
    if (e->hash == 0) {
        uint32_t off;
        if (!arena_add(&s->keys, term, len, &off))
            return oom(err);
        *e = (entry_t){
            .hash = h, .key = off, .len = (uint32_t)len, .lang = lang};
        t->used++;
    }
    e->df += df;
    e->count += count;
    e->nlogn += nlogn;
    return NS_OK;
}

ns_err_t ns_termstats_doc_begin(ns_termstats_t *s, const char *lang,
                                ns_error_t *err)
{
    int li = lang_index(s, lang, true);
    if (li < 0)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: more than %d languages",
                            MAX_LANGS);
    s->in_doc = true;
    s->doc_lang = (uint32_t)li;
    s->doc_words = 0;
    /* Only the slots the last document used are cleared. */
    for (size_t i = 0; i < s->dw_used; i++)
        s->dw[s->dw_slots[i]].hash = 0;
    s->dw_used = 0;
    s->doc_keys.len = 0;
    return NS_OK;
}

static bool dw_grow(ns_termstats_t *s)
{
    size_t cap = s->dw_cap ? s->dw_cap * 2 : 256;
    doc_word_t *d = calloc(cap, sizeof(*d));
    uint32_t *slots = malloc(cap / 2 * sizeof(*slots));
    if (d == NULL || slots == NULL) {
        free(d);
        free(slots);
        return false;
    }
    for (size_t k = 0; k < s->dw_used; k++) {
        const doc_word_t *w = &s->dw[s->dw_slots[k]];
        size_t j = w->hash & (cap - 1);
        while (d[j].hash != 0)
            j = (j + 1) & (cap - 1);
        d[j] = *w;
        slots[k] = (uint32_t)j;
    }
    free(s->dw);
    free(s->dw_slots);
    s->dw = d;
    s->dw_slots = slots;
    s->dw_cap = cap;
    return true;
}

ns_err_t ns_termstats_word(ns_termstats_t *s, const char *word, size_t len,
                           ns_error_t *err)
{
    if (!s->in_doc)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: word outside a document");
    if ((s->dw_used + 1) * 2 > s->dw_cap && !dw_grow(s))
        return oom(err);
    uint64_t h = hash_of(0, word, len);
    size_t mask = s->dw_cap - 1;
    size_t i = h & mask;
    for (;; i = (i + 1) & mask) {
        doc_word_t *d = &s->dw[i];
        if (d->hash == 0) {
            uint32_t off;
            if (!arena_add(&s->doc_keys, word, len, &off))
                return oom(err);
            *d = (doc_word_t){.hash = h, .key = off, .len = (uint32_t)len};
            s->dw_slots[s->dw_used++] = (uint32_t)i;
            break;
        }
        if (d->hash == h && d->len == len &&
            memcmp(s->doc_keys.data + d->key, word, len) == 0)
            break;
    }
    s->dw[i].n++;
    s->doc_words++;
    return NS_OK;
}

/* n·ln n in fixed point, rounded once per (document, term). */
static int64_t nlogn_fixed(int64_t n)
{
    return n <= 1
               ? 0
               : (int64_t)llround((double)n * log((double)n) * NS_NLOGN_SCALE);
}

ns_err_t ns_termstats_doc_end(ns_termstats_t *s, ns_error_t *err)
{
    if (!s->in_doc)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: no document to end");
    s->in_doc = false;
    lang_t *l = &s->langs[s->doc_lang];
    l->docs++;
    l->words += s->doc_words;
    for (size_t k = 0; k < s->dw_used; k++) {
        const doc_word_t *d = &s->dw[s->dw_slots[k]];
        if (add_term(s, s->doc_lang, s->doc_keys.data + d->key, d->len, 1, d->n,
                     nlogn_fixed(d->n), err) != NS_OK)
            return err->code;
    }
    return NS_OK;
}

ns_err_t ns_termstats_merge(ns_termstats_t *s, const ns_termstats_t *o,
                            int sign, ns_error_t *err)
{
    int64_t k = sign < 0 ? -1 : 1;
    uint32_t map[MAX_LANGS];
    for (size_t i = 0; i < o->n_langs; i++) {
        int li = lang_index(s, o->langs[i].name, true);
        if (li < 0)
            return ns_error_set(err, NS_ERR_INVALID,
                                "term statistics: more than %d languages",
                                MAX_LANGS);
        map[i] = (uint32_t)li;
        s->langs[li].docs += k * o->langs[i].docs;
        s->langs[li].words += k * o->langs[i].words;
    }
    for (size_t i = 0; i < o->terms.cap; i++) {
        const entry_t *e = &o->terms.slots[i];
        if (e->hash == 0)
            continue;
        if (add_term(s, map[e->lang], o->keys.data + e->key, e->len, k * e->df,
                     k * e->count, k * e->nlogn, err) != NS_OK)
            return err->code;
    }
    return NS_OK;
}

static bool live(const entry_t *e)
{
    return e->hash != 0 && (e->df != 0 || e->count != 0 || e->nlogn != 0);
}

size_t ns_termstats_terms(const ns_termstats_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->terms.cap; i++)
        n += live(&s->terms.slots[i]);
    return n;
}

size_t ns_termstats_langs(const ns_termstats_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_langs; i++)
        n += s->langs[i].docs != 0 || s->langs[i].words != 0;
    return n;
}

int ns_termstats_get(const ns_termstats_t *s, const char *lang,
                     const char *term, ns_term_t *out)
{
    int li = lang_find(s, lang);
    if (li < 0 || s->terms.cap == 0)
        return 0;
    size_t len = strlen(term);
    const entry_t *e =
        find_slot(&s->terms, &s->keys, hash_of((uint32_t)li, term, len),
                  (uint32_t)li, term, len);
    if (!live(e))
        return 0;
    *out = (ns_term_t){.lang = s->langs[li].name,
                       .term = s->keys.data + e->key,
                       .df = e->df,
                       .count = e->count,
                       .nlogn = e->nlogn};
    return 1;
}

int ns_termstats_lang(const ns_termstats_t *s, const char *lang,
                      ns_lang_stats_t *out)
{
    int li = lang_find(s, lang);
    if (li < 0 || (s->langs[li].docs == 0 && s->langs[li].words == 0))
        return 0;
    *out = (ns_lang_stats_t){.lang = s->langs[li].name,
                             .docs = s->langs[li].docs,
                             .words = s->langs[li].words};
    return 1;
}

size_t ns_termstats_lang_names(const ns_termstats_t *s, const char **out,
                               size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_langs; i++) {
        const lang_t *l = &s->langs[i];
        if (l->docs == 0 && l->words == 0)
            continue;
        /* insertion into name order */
        size_t j = n < max ? n : max;
        while (j > 0 && strcmp(out[j - 1], l->name) > 0) {
            if (j < max)
                out[j] = out[j - 1];
            j--;
        }
        if (j < max)
            out[j] = l->name;
        n++;
    }
    return n;
}

void ns_termstats_each(const ns_termstats_t *s,
                       void (*fn)(const ns_term_t *t, void *arg), void *arg)
{
    for (size_t i = 0; i < s->terms.cap; i++) {
        const entry_t *e = &s->terms.slots[i];
        if (!live(e))
            continue;
        ns_term_t t = {.lang = s->langs[e->lang].name,
                       .term = s->keys.data + e->key,
                       .df = e->df,
                       .count = e->count,
                       .nlogn = e->nlogn};
        fn(&t, arg);
    }
}

int ns_termstats_equal(const ns_termstats_t *a, const ns_termstats_t *b)
{
    if (ns_termstats_terms(a) != ns_termstats_terms(b) ||
        ns_termstats_langs(a) != ns_termstats_langs(b))
        return 0;
    for (size_t i = 0; i < a->n_langs; i++) {
        const lang_t *l = &a->langs[i];
        if (l->docs == 0 && l->words == 0)
            continue;
        ns_lang_stats_t o;
        if (!ns_termstats_lang(b, l->name, &o) || o.docs != l->docs ||
            o.words != l->words)
            return 0;
    }
    for (size_t i = 0; i < a->terms.cap; i++) {
        const entry_t *e = &a->terms.slots[i];
        if (!live(e))
            continue;
        ns_term_t o;
        if (!ns_termstats_get(b, a->langs[e->lang].name, a->keys.data + e->key,
                              &o) ||
            o.df != e->df || o.count != e->count || o.nlogn != e->nlogn)
            return 0;
    }
    return 1;
}

/* ---- the binary form ---------------------------------------------------
 * MAGIC, then a zstd frame of: langs (count, then name, docs, words each),
 * terms (count, then lang index, term, df, count, nlogn each), sorted so
 * that equal statistics encode to equal bytes. Integers are zigzag
 * varints; strings are a varint length and the bytes. */

typedef struct wbuf {
    char *data;
    size_t len, cap;
    bool failed;
} wbuf_t;

static void put(wbuf_t *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_varint(wbuf_t *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (unsigned char)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
        z >>= 7;
    } while (z != 0);
    put(b, tmp, n);
}

static void put_str(wbuf_t *b, const char *s, size_t len)
{
    put_varint(b, (int64_t)len);
    put(b, s, len);
}

typedef struct sorted {
    const ns_termstats_t *s;
    const uint32_t *rank; /* lang index -> rank by name */
} sorted_t;

static _Thread_local const sorted_t *sort_ctx;

static int by_lang_term(const void *x, const void *y)
{
    const entry_t *a = *(entry_t *const *)x, *b = *(entry_t *const *)y;
    uint32_t ra = sort_ctx->rank[a->lang], rb = sort_ctx->rank[b->lang];
    if (ra != rb)
        return ra < rb ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(sort_ctx->s->keys.data + a->key,
                   sort_ctx->s->keys.data + b->key, n);
    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

/* The sorted view of s: the non-empty languages in name order (order[],
 * n_langs; rank[] maps a language index to its place) and the live terms
 * by (language, bytes of the term); the terms array is malloc'd, NULL
 * when out of memory. Both the encoding and the ordered walk use it. */
typedef struct view {
    uint32_t order[MAX_LANGS], rank[MAX_LANGS];
    size_t n_langs, n_terms;
    const entry_t **terms;
} view_t;

static bool view_build(const ns_termstats_t *s, view_t *v)
{
    bool used[MAX_LANGS] = {false};
    for (size_t i = 0; i < s->n_langs; i++)
        used[i] = s->langs[i].docs != 0 || s->langs[i].words != 0;
    for (size_t i = 0; i < s->terms.cap; i++)
        if (live(&s->terms.slots[i]))
            used[s->terms.slots[i].lang] = true;
    /* Insertion sort: at most MAX_LANGS. */
    v->n_langs = 0;
    for (size_t i = 0; i < s->n_langs; i++) {
        if (!used[i])
            continue;
        size_t j = v->n_langs++;
        while (j > 0 &&
               strcmp(s->langs[v->order[j - 1]].name, s->langs[i].name) > 0) {
            v->order[j] = v->order[j - 1];
            j--;
        }
        v->order[j] = (uint32_t)i;
    }
    for (size_t i = 0; i < v->n_langs; i++)
        v->rank[v->order[i]] = (uint32_t)i;
    v->n_terms = ns_termstats_terms(s);
    v->terms = malloc((v->n_terms ? v->n_terms : 1) * sizeof(*v->terms));
    if (v->terms == NULL)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < s->terms.cap; i++)
        if (live(&s->terms.slots[i]))
            v->terms[k++] = &s->terms.slots[i];
    sorted_t ctx = {s, v->rank};
    sort_ctx = &ctx;
    qsort(v->terms, v->n_terms, sizeof(v->terms[0]), by_lang_term);
    return true;
}

ns_err_t ns_termstats_each_sorted(const ns_termstats_t *s,
                                  void (*fn)(const ns_term_t *t, void *arg),
                                  void *arg, ns_error_t *err)
{
    view_t v;
    if (!view_build(s, &v))
        return oom(err);
    for (size_t i = 0; i < v.n_terms; i++) {
        const entry_t *e = v.terms[i];
        ns_term_t t = {.lang = s->langs[e->lang].name,
                       .term = s->keys.data + e->key,
                       .df = e->df,
                       .count = e->count,
                       .nlogn = e->nlogn};
        fn(&t, arg);
    }
    free(v.terms);
    return NS_OK;
}

ns_err_t ns_termstats_encode(const ns_termstats_t *s, char **out, size_t *len,
                             ns_error_t *err)
{
    view_t v;
    if (!view_build(s, &v))
        return oom(err);
    const uint32_t *order = v.order, *rank = v.rank;
    size_t n_langs = v.n_langs, n_terms = v.n_terms;
    const entry_t **terms = v.terms;
    wbuf_t b = {0};
    put_varint(&b, (int64_t)n_langs);
    for (size_t i = 0; i < n_langs; i++) {
        const lang_t *l = &s->langs[order[i]];
        put_str(&b, l->name, strlen(l->name));
        put_varint(&b, l->docs);
        put_varint(&b, l->words);
    }
    put_varint(&b, (int64_t)n_terms);
    for (size_t i = 0; i < n_terms; i++) {
        const entry_t *e = terms[i];
        put_varint(&b, rank[e->lang]);
        put_str(&b, s->keys.data + e->key, e->len);
        put_varint(&b, e->df);
        put_varint(&b, e->count);
        put_varint(&b, e->nlogn);
    }
    free(terms);
    if (b.failed) {
        free(b.data);
        return oom(err);
    }
    size_t bound = ZSTD_compressBound(b.len);
    char *z = malloc(MAGIC_LEN + bound);
    if (z == NULL) {
        free(b.data);
        return oom(err);
    }
    memcpy(z, MAGIC, MAGIC_LEN);
    /* With a checksum: a corrupt partial is refused, never misread. */
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    bool made = cctx != NULL;
    size_t zn = 0;
    if (made) {
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
        zn = ZSTD_compress2(cctx, z + MAGIC_LEN, bound, b.data, b.len);
        ZSTD_freeCCtx(cctx);
    }
    free(b.data);
    if (!made || ZSTD_isError(zn)) {
        free(z);
        return ns_error_set(err, NS_ERR_IO, "term statistics: zstd: %s",
                            made ? ZSTD_getErrorName(zn) : "out of memory");
    }
    *out = z;
    *len = MAGIC_LEN + zn;
    return NS_OK;
}

typedef struct rbuf {
    const unsigned char *p, *end;
    bool bad;
} rbuf_t;

static int64_t get_varint(rbuf_t *r)
{
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        unsigned char c = *r->p++;
        z |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    }
    r->bad = true;
    return 0;
}

static const char *get_str(rbuf_t *r, size_t *len)
{
    int64_t n = get_varint(r);
    if (r->bad || n < 0 || n > r->end - r->p) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    *len = (size_t)n;
    return s;
}

ns_termstats_t *ns_termstats_decode(const char *data, size_t len,
                                    ns_error_t *err)
{
    if (len < MAGIC_LEN || memcmp(data, MAGIC, MAGIC_LEN) != 0) {
        ns_error_set(err, NS_ERR_INVALID,
                     "term statistics: not an encoded partial");
        return NULL;
    }
    unsigned long long raw_len =
        ZSTD_getFrameContentSize(data + MAGIC_LEN, len - MAGIC_LEN);
    if (raw_len == ZSTD_CONTENTSIZE_ERROR ||
        raw_len == ZSTD_CONTENTSIZE_UNKNOWN || raw_len > (1ull << 34)) {
        ns_error_set(err, NS_ERR_INVALID,
                     "term statistics: corrupt compressed data");
        return NULL;
    }
    char *raw = malloc(raw_len ? raw_len : 1);
    ns_termstats_t *s = ns_termstats_new();
    if (raw == NULL || s == NULL) {
        free(raw);
        ns_termstats_destroy(s);
        oom(err);
        return NULL;
    }
    size_t got =
        ZSTD_decompress(raw, raw_len, data + MAGIC_LEN, len - MAGIC_LEN);
    rbuf_t r = {(const unsigned char *)raw,
                (const unsigned char *)raw + (ZSTD_isError(got) ? 0 : got),
                ZSTD_isError(got) || got != raw_len};
    int64_t n_langs = get_varint(&r);
    if (n_langs < 0 || n_langs > MAX_LANGS)
        r.bad = true;
    for (int64_t i = 0; i < n_langs && !r.bad; i++) {
        size_t n = 0;
        const char *name = get_str(&r, &n);
        if (r.bad || n > LANG_MAX) {
            r.bad = true;
            break;
        }
        lang_t *l = &s->langs[s->n_langs++];
        memcpy(l->name, name, n);
        l->name[n] = '\0';
        l->docs = get_varint(&r);
        l->words = get_varint(&r);
    }
    int64_t n_terms = r.bad ? 0 : get_varint(&r);
    if (n_terms < 0)
        r.bad = true;
    for (int64_t i = 0; i < n_terms && !r.bad; i++) {
        int64_t li = get_varint(&r);
        size_t n = 0;
        const char *term = get_str(&r, &n);
        int64_t df = get_varint(&r), count = get_varint(&r),
                nlogn = get_varint(&r);
        if (r.bad || li < 0 || li >= (int64_t)s->n_langs) {
            r.bad = true;
            break;
        }
        ns_error_t aerr;
        if (add_term(s, (uint32_t)li, term, n, df, count, nlogn, &aerr) !=
            NS_OK) {
            free(raw);
            ns_termstats_destroy(s);
            oom(err);
            return NULL;
        }
    }
    free(raw);
    if (r.bad || r.p != r.end) {
        ns_termstats_destroy(s);
        ns_error_set(err, NS_ERR_INVALID,
                     "term statistics: corrupt or truncated partial");
        return NULL;
    }
    return s;
}
