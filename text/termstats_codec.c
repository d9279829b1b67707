/* termstats_codec.c: the sorted view of term statistics, their ordered
 * walk and their binary form (the shard partials kept in Postgres). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "termstats_codec.h"

#define MAGIC "NSTS\x01"
#define MAGIC_LEN 5

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

/* The arena of the language being sorted (qsort has no argument). */
static _Thread_local const char *sort_keys;

/* A term as it is sorted: the first 16 bytes of its entry's head as two
 * big-endian words, so that most comparisons are two integer compares on
 * the record itself instead of two cache misses (the entries) and a third
 * (the arena). The zero padding of a shorter head orders it first, as a
 * prefix sorts before the longer term; heads that are equal fall back to
 * the whole keys. */
typedef struct sort_rec {
    uint64_t k0, k1;
    const entry_t *e;
} sort_rec_t;

static uint64_t be64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static int by_key(const void *x, const void *y)
{
    const sort_rec_t *a = x, *b = y;
    if (a->k0 != b->k0)
        return a->k0 < b->k0 ? -1 : 1;
    if (a->k1 != b->k1)
        return a->k1 < b->k1 ? -1 : 1;
    const entry_t *ea = a->e, *eb = b->e;
    size_t n = ea->len < eb->len ? ea->len : eb->len;
    int c = n > HEAD ? memcmp(sort_keys + ea->key + HEAD,
                              sort_keys + eb->key + HEAD, n - HEAD)
                     : 0;
    return c != 0 ? c : (ea->len > eb->len) - (ea->len < eb->len);
}

/* The sorted view of s: the non-empty languages in name order (order[],
 * n_langs; rank[] maps a language index to its place) and the live terms
 * by (language, bytes of the term). Both the encoding and the ordered walk
 * use it. */
struct ns_termstats_view {
    const ns_termstats_t *s;
    uint32_t order[MAX_LANGS], rank[MAX_LANGS];
    size_t n_langs, n_terms;
    const entry_t **terms;
};

/* Sorts one language's n records (keys: its arena). */
static void sort_lang(sort_rec_t *rec, size_t n, const char *keys)
{
    sort_keys = keys;
    qsort(rec, n, sizeof(*rec), by_key);
}

ns_termstats_view_t *ns_termstats_view_new(const ns_termstats_t *s,
                                           ns_error_t *err)
{
    ns_termstats_view_t *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        ns_ts_oom(err);
        return NULL;
    }
    v->s = s;
    bool used[MAX_LANGS] = {false};
    for (size_t i = 0; i < s->n_langs; i++)
        used[i] = s->langs[i].docs != 0 || s->langs[i].words != 0;
    for (size_t li = 0; li < s->n_langs; li++)
        for (size_t i = 0; i < s->langs[li].terms.cap && !used[li]; i++)
            used[li] = ns_ts_live(&s->langs[li].terms.slots[i]);
    /* Insertion sort: at most MAX_LANGS. */
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
    sort_rec_t *rec = malloc((v->n_terms ? v->n_terms : 1) * sizeof(*rec));
    if (rec == NULL) {
        free(v);
        ns_ts_oom(err);
        return NULL;
    }
    /* Language by language in name order, each sorted on its own. */
    size_t k = 0;
    for (size_t r = 0; r < v->n_langs; r++) {
        const lang_t *l = &s->langs[v->order[r]];
        size_t first = k;
        for (size_t i = 0; i < l->terms.cap; i++) {
            const entry_t *e = &l->terms.slots[i];
            if (ns_ts_live(e))
                rec[k++] = (sort_rec_t){be64(e->head), be64(e->head + 8), e};
        }
        sort_lang(rec + first, k - first, l->keys.data);
    }
    /* The records become the pointers they hold, in place (a pointer is
     * no larger than a record, so each lands at or before the record it
     * is read from), and the memory shrinks to them. */
    _Static_assert(sizeof(const entry_t *) <= sizeof(sort_rec_t),
                   "the pointers fit where the records were");
    const entry_t **terms = (const entry_t **)(void *)rec;
    for (size_t i = 0; i < k; i++) {
        const entry_t *e = rec[i].e;
        terms[i] = e;
    }
    const entry_t **shrunk = realloc(terms, (k ? k : 1) * sizeof(*terms));
    v->terms = shrunk != NULL ? shrunk : terms;
    return v;
}

void ns_termstats_view_destroy(ns_termstats_view_t *v)
{
    if (v == NULL)
        return;
    free(v->terms);
    free(v);
}

size_t ns_termstats_view_terms(const ns_termstats_view_t *v)
{
    return v->n_terms;
}

/* Walking the terms in sorted order visits their entries (and keys) in
 * no order of memory: each would be a cache miss. The entry AHEAD terms
 * on is asked for, and the key of the one AHEAD / 2 on (its entry asked
 * for AHEAD / 2 terms ago). */
#define AHEAD 16

static inline void prefetch_ahead(const ns_termstats_t *s,
                                  const entry_t *const *terms, size_t i,
                                  size_t n)
{
    if (i + AHEAD < n)
        __builtin_prefetch(terms[i + AHEAD]);
    if (i + AHEAD / 2 < n) {
        const entry_t *e = terms[i + AHEAD / 2];
        __builtin_prefetch(s->langs[e->lang].keys.data + e->key);
    }
}

void ns_termstats_view_each(const ns_termstats_view_t *v,
                            void (*fn)(const ns_term_t *t, void *arg),
                            void *arg)
{
    const ns_termstats_t *s = v->s;
    for (size_t i = 0; i < v->n_terms; i++) {
        prefetch_ahead(s, v->terms, i, v->n_terms);
        const entry_t *e = v->terms[i];
        const lang_t *l = &s->langs[e->lang];
        ns_term_t t = {.lang = l->name,
                       .term = l->keys.data + e->key,
                       .df = e->df,
                       .count = e->count,
                       .nlogn = e->nlogn};
        fn(&t, arg);
    }
}

ns_err_t ns_termstats_each_sorted(const ns_termstats_t *s,
                                  void (*fn)(const ns_term_t *t, void *arg),
                                  void *arg, ns_error_t *err)
{
    ns_termstats_view_t *v = ns_termstats_view_new(s, err);
    if (v == NULL)
        return err->code;
    ns_termstats_view_each(v, fn, arg);
    ns_termstats_view_destroy(v);
    return NS_OK;
}

ns_err_t ns_termstats_view_encode(const ns_termstats_view_t *v, char **out,
                                  size_t *len, ns_error_t *err)
{
    const ns_termstats_t *s = v->s;
    const uint32_t *order = v->order, *rank = v->rank;
    size_t n_langs = v->n_langs, n_terms = v->n_terms;
    const entry_t *const *terms = v->terms;
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
        prefetch_ahead(s, terms, i, n_terms);
        const entry_t *e = terms[i];
        put_varint(&b, rank[e->lang]);
        put_str(&b, s->langs[e->lang].keys.data + e->key, e->len);
        put_varint(&b, e->df);
        put_varint(&b, e->count);
        put_varint(&b, e->nlogn);
    }
    if (b.failed) {
        free(b.data);
        return ns_ts_oom(err);
    }
    size_t bound = ZSTD_compressBound(b.len);
    char *z = malloc(MAGIC_LEN + bound);
    if (z == NULL) {
        free(b.data);
        return ns_ts_oom(err);
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

ns_err_t ns_termstats_encode(const ns_termstats_t *s, char **out, size_t *len,
                             ns_error_t *err)
{
    ns_termstats_view_t *v = ns_termstats_view_new(s, err);
    if (v == NULL)
        return err->code;
    ns_err_t rc = ns_termstats_view_encode(v, out, len, err);
    ns_termstats_view_destroy(v);
    return rc;
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

/* s += k * the encoded statistics, straight from the bytes: the partial's
 * own tables are never built. On an error s is left part-way (the caller
 * throws it away). */
static ns_err_t decode_into(ns_termstats_t *s, const char *data, size_t len,
                            int64_t k, ns_error_t *err)
{
    if (len < MAGIC_LEN || memcmp(data, MAGIC, MAGIC_LEN) != 0)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: not an encoded partial");
    unsigned long long raw_len =
        ZSTD_getFrameContentSize(data + MAGIC_LEN, len - MAGIC_LEN);
    if (raw_len == ZSTD_CONTENTSIZE_ERROR ||
        raw_len == ZSTD_CONTENTSIZE_UNKNOWN || raw_len > (1ull << 34))
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: corrupt compressed data");
    char *raw = malloc(raw_len ? raw_len : 1);
    if (raw == NULL)
        return ns_ts_oom(err);
    size_t got =
        ZSTD_decompress(raw, raw_len, data + MAGIC_LEN, len - MAGIC_LEN);
    rbuf_t r = {(const unsigned char *)raw,
                (const unsigned char *)raw + (ZSTD_isError(got) ? 0 : got),
                ZSTD_isError(got) || got != raw_len};
    /* map: the encoding's language numbers to s's */
    uint32_t map[MAX_LANGS];
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
        char lang[LANG_MAX + 1];
        memcpy(lang, name, n);
        lang[n] = '\0';
        int li = ns_ts_lang_index(s, lang, true);
        if (li < 0) {
            free(raw);
            return ns_error_set(err, NS_ERR_INVALID,
                                "term statistics: more than %d languages",
                                MAX_LANGS);
        }
        map[i] = (uint32_t)li;
        s->langs[li].docs += k * get_varint(&r);
        s->langs[li].words += k * get_varint(&r);
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
        if (r.bad || li < 0 || li >= n_langs) {
            r.bad = true;
            break;
        }
        if (ns_ts_add_term(s, map[li], term, n, k * df, k * count, k * nlogn,
                           err) != NS_OK) {
            free(raw);
            return err->code;
        }
    }
    free(raw);
    if (r.bad || r.p != r.end)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: corrupt or truncated partial");
    return NS_OK;
}

ns_err_t ns_termstats_merge_encoded(ns_termstats_t *s, const char *data,
                                    size_t len, int sign, ns_error_t *err)
{
    return decode_into(s, data, len, sign < 0 ? -1 : 1, err);
}

ns_termstats_t *ns_termstats_decode(const char *data, size_t len,
                                    ns_error_t *err)
{
    ns_termstats_t *s = ns_termstats_new();
    if (s == NULL) {
        ns_ts_oom(err);
        return NULL;
    }
    if (decode_into(s, data, len, 1, err) != NS_OK) {
        ns_termstats_destroy(s);
        return NULL;
    }
    return s;
}
