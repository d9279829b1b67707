#include "ns/termstats.h"

#include <math.h>
#include <pthread.h>
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
    uint32_t doc_pos; /* 1 + its place in the current document's list; 0 */
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

/* A language: its totals, and its terms in a table of their own, so that
 * the entries and keys of the language being counted lie together in
 * memory (documents of one language tend to come together). */
typedef struct lang {
    char name[LANG_MAX + 1];
    int64_t docs, words;
    table_t terms;
    arena_t keys;
} lang_t;

/* A distinct term of the current document: its slot and occurrences. The
 * words of a document go straight to their entry of the table (one lookup
 * per word, no second set to hash into and then out of); the entry points
 * back here, and the document's end adds these to df, count and nlogn. */
typedef struct doc_term {
    uint32_t slot;
    int64_t n;
} doc_term_t;

/* A word waits PIPE words between its hash (when the cache line of its slot
 * is asked for) and its lookup: the table is larger than the caches, and a
 * lookup that waits for memory is most of the cost of counting. */
#define PIPE 8
#define PIPE_WORD_MAX 64

typedef struct pending {
    uint64_t hash;
    size_t len;
    char word[PIPE_WORD_MAX];
} pending_t;

struct ns_termstats {
    lang_t langs[MAX_LANGS];
    size_t n_langs;
    size_t last_lang; /* the one lang_index() found last */
    /* the document being counted */
    bool in_doc;
    uint32_t doc_lang;
    int64_t doc_words;
    doc_term_t *dt;
    size_t dt_cap, dt_used;
    /* words hashed, their slot prefetched, not yet counted */
    pending_t pipe[PIPE];
    size_t pipe_head, pipe_n;
};

/* 64-bit words at a time, then a final mix: the table's index is the low
 * bits. Hashes are never stored outside the process (the binary form
 * holds the terms), so this function may change freely. */
static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_of(uint32_t lang, const char *s, size_t len)
{
    uint64_t h = (0x9e3779b97f4a7c15ull * (lang + 1)) ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h ^= h >> 29;
    }
    /* The last 1 to 7 bytes in at most two loads (overlapping: the length
     * is in the seed), not a byte loop nor a call of memcpy. */
    size_t r = len - i;
    const unsigned char *t = (const unsigned char *)s + i;
    if (r >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, t, 4);
        memcpy(&hi, t + r - 4, 4);
        h = (h ^ ((uint64_t)hi << 32 | lo)) * 0x9fb21c651e98df25ull;
    } else if (r > 0) {
        uint64_t w = (uint64_t)t[0] << 16 | (uint64_t)t[r >> 1] << 8 | t[r - 1];
        h = (h ^ w) * 0x9fb21c651e98df25ull;
    }
    h = mix64(h);
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
    for (size_t i = 0; i < s->n_langs; i++) {
        free(s->langs[i].terms.slots);
        free(s->langs[i].keys.data);
    }
    free(s->dt);
    free(s);
}

static int lang_index(ns_termstats_t *s, const char *lang, bool add)
{
    char name[LANG_MAX + 1];
    snprintf(name, sizeof(name), "%s", lang ? lang : "");
    /* documents of one language tend to come together */
    if (s->last_lang < s->n_langs &&
        strcmp(s->langs[s->last_lang].name, name) == 0)
        return (int)s->last_lang;
    for (size_t i = 0; i < s->n_langs; i++)
        if (strcmp(s->langs[i].name, name) == 0)
            return (int)(s->last_lang = i);
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

static bool live(const entry_t *e)
{
    return e->hash != 0 && (e->df != 0 || e->count != 0 || e->nlogn != 0);
}

static bool grow(ns_termstats_t *s, table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    entry_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return false;
    size_t used = 0;
    for (size_t i = 0; i < t->cap; i++) {
        entry_t *e = &t->slots[i];
        /* Empty, or emptied by a subtraction; the terms of the current
         * document have no counts yet and stay. */
        if (!live(e) && !(e->hash != 0 && e->doc_pos != 0))
            continue;
        size_t j = e->hash & (cap - 1);
        while (slots[j].hash != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = *e;
        if (e->doc_pos != 0)
            s->dt[e->doc_pos - 1].slot = (uint32_t)j;
        used++;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->used = used;
    return true;
}

/* The entry of (lang, term) whose hash is h, created (with no counts) when
 * absent; NULL when out of memory. May move every entry (the table
 * grows). */
static entry_t *term_entry(ns_termstats_t *s, uint64_t h, uint32_t lang,
                           const char *term, size_t len)
{
    lang_t *l = &s->langs[lang];
    table_t *t = &l->terms;
    if ((t->used + 1) * 4 > t->cap * 3 && !grow(s, t))
        return NULL;
    entry_t *e = find_slot(t, &l->keys, h, lang, term, len);
    if (e->hash == 0) {
        uint32_t off;
        if (!arena_add(&l->keys, term, len, &off))
            return NULL;
        *e = (entry_t){
            .hash = h, .key = off, .len = (uint32_t)len, .lang = lang};
        t->used++;
    }
    return e;
}

/* Adds to the statistics of (lang, term), creating it. */
static ns_err_t add_term(ns_termstats_t *s, uint32_t lang, const char *term,
                         size_t len, int64_t df, int64_t count, int64_t nlogn,
                         ns_error_t *err)
{
    entry_t *e = term_entry(s, hash_of(lang, term, len), lang, term, len);
    if (e == NULL)
        return oom(err);
    e->df += df;
    e->count += count;
    e->nlogn += nlogn;
    return NS_OK;
}

/* Forgets the current document's terms (their counts were added, or the
 * document is abandoned). */
static void doc_clear(ns_termstats_t *s)
{
    for (size_t k = 0; k < s->dt_used; k++)
        s->langs[s->doc_lang].terms.slots[s->dt[k].slot].doc_pos = 0;
    s->dt_used = 0;
}

ns_err_t ns_termstats_doc_begin(ns_termstats_t *s, const char *lang,
                                ns_error_t *err)
{
    int li = lang_index(s, lang, true);
    if (li < 0)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: more than %d languages",
                            MAX_LANGS);
    doc_clear(s);
    s->pipe_n = 0; /* an abandoned document's words */
    s->in_doc = true;
    s->doc_lang = (uint32_t)li;
    s->doc_words = 0;
    return NS_OK;
}

/* Counts one word of the current document (h: its hash). */
static ns_err_t count_word(ns_termstats_t *s, uint64_t h, const char *word,
                           size_t len, ns_error_t *err)
{
    if (s->dt_used == s->dt_cap) {
        size_t cap = s->dt_cap ? s->dt_cap * 2 : 256;
        doc_term_t *d =
            cap <= UINT32_MAX ? realloc(s->dt, cap * sizeof(*d)) : NULL;
        if (d == NULL)
            return oom(err);
        s->dt = d;
        s->dt_cap = cap;
    }
    entry_t *e = term_entry(s, h, s->doc_lang, word, len);
    if (e == NULL)
        return oom(err);
    if (e->doc_pos == 0) {
        s->dt[s->dt_used] = (doc_term_t){
            .slot = (uint32_t)(e - s->langs[s->doc_lang].terms.slots), .n = 0};
        e->doc_pos = (uint32_t)++s->dt_used;
    }
    s->dt[e->doc_pos - 1].n++;
    s->doc_words++;
    return NS_OK;
}

/* Counts the waiting words until keep are left. */
static ns_err_t pipe_drain(ns_termstats_t *s, size_t keep, ns_error_t *err)
{
    while (s->pipe_n > keep) {
        const pending_t *w = &s->pipe[s->pipe_head];
        s->pipe_head = (s->pipe_head + 1) % PIPE;
        s->pipe_n--;
        if (count_word(s, w->hash, w->word, w->len, err) != NS_OK)
            return err->code;
    }
    return NS_OK;
}

ns_err_t ns_termstats_word(ns_termstats_t *s, const char *word, size_t len,
                           ns_error_t *err)
{
    if (!s->in_doc)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: word outside a document");
    uint64_t h = hash_of(s->doc_lang, word, len);
    if (len > PIPE_WORD_MAX) {
        if (pipe_drain(s, 0, err) != NS_OK)
            return err->code;
        return count_word(s, h, word, len, err);
    }
    const table_t *t = &s->langs[s->doc_lang].terms;
    if (t->cap > 0) {
        const entry_t *e = &t->slots[h & (t->cap - 1)];
        __builtin_prefetch(e);
        __builtin_prefetch((const char *)(e + 1) - 1);
    }
    if (pipe_drain(s, PIPE - 1, err) != NS_OK)
        return err->code;
    pending_t *w = &s->pipe[(s->pipe_head + s->pipe_n) % PIPE];
    w->hash = h;
    w->len = len;
    memcpy(w->word, word, len);
    s->pipe_n++;
    return NS_OK;
}

/* n·ln n in fixed point, rounded once per (document, term). */
static int64_t nlogn_compute(int64_t n)
{
    return n <= 1
               ? 0
               : (int64_t)llround((double)n * log((double)n) * NS_NLOGN_SCALE);
}

/* The same, the small n of most (document, term) pairs from a table. */
#define NLOGN_SMALL 64
static int64_t nlogn_small[NLOGN_SMALL];
static pthread_once_t nlogn_once = PTHREAD_ONCE_INIT;

static void nlogn_init(void)
{
    for (int64_t n = 0; n < NLOGN_SMALL; n++)
        nlogn_small[n] = nlogn_compute(n);
}

static int64_t nlogn_fixed(int64_t n)
{
    if (n >= 0 && n < NLOGN_SMALL) {
        pthread_once(&nlogn_once, nlogn_init);
        return nlogn_small[n];
    }
    return nlogn_compute(n);
}

ns_err_t ns_termstats_doc_end(ns_termstats_t *s, ns_error_t *err)
{
    if (!s->in_doc)
        return ns_error_set(err, NS_ERR_INVALID,
                            "term statistics: no document to end");
    s->in_doc = false;
    if (pipe_drain(s, 0, err) != NS_OK)
        return err->code;
    lang_t *l = &s->langs[s->doc_lang];
    l->docs++;
    l->words += s->doc_words;
    for (size_t k = 0; k < s->dt_used; k++) {
        entry_t *e = &l->terms.slots[s->dt[k].slot];
        int64_t n = s->dt[k].n;
        e->df++;
        e->count += n;
        e->nlogn += nlogn_fixed(n);
        e->doc_pos = 0;
    }
    s->dt_used = 0;
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
    for (size_t li = 0; li < o->n_langs; li++) {
        const lang_t *ol = &o->langs[li];
        for (size_t i = 0; i < ol->terms.cap; i++) {
            const entry_t *e = &ol->terms.slots[i];
            if (e->hash == 0)
                continue;
            if (add_term(s, map[li], ol->keys.data + e->key, e->len, k * e->df,
                         k * e->count, k * e->nlogn, err) != NS_OK)
                return err->code;
        }
    }
    return NS_OK;
}

size_t ns_termstats_terms(const ns_termstats_t *s)
{
    size_t n = 0;
    for (size_t li = 0; li < s->n_langs; li++)
        for (size_t i = 0; i < s->langs[li].terms.cap; i++)
            n += live(&s->langs[li].terms.slots[i]);
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
    if (li < 0 || s->langs[li].terms.cap == 0)
        return 0;
    const lang_t *l = &s->langs[li];
    size_t len = strlen(term);
    const entry_t *e =
        find_slot(&l->terms, &l->keys, hash_of((uint32_t)li, term, len),
                  (uint32_t)li, term, len);
    if (!live(e))
        return 0;
    *out = (ns_term_t){.lang = l->name,
                       .term = l->keys.data + e->key,
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
    for (size_t li = 0; li < s->n_langs; li++) {
        const lang_t *l = &s->langs[li];
        for (size_t i = 0; i < l->terms.cap; i++) {
            const entry_t *e = &l->terms.slots[i];
            if (!live(e))
                continue;
            ns_term_t t = {.lang = l->name,
                           .term = l->keys.data + e->key,
                           .df = e->df,
                           .count = e->count,
                           .nlogn = e->nlogn};
            fn(&t, arg);
        }
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
    for (size_t li = 0; li < a->n_langs; li++) {
        const lang_t *l = &a->langs[li];
        for (size_t i = 0; i < l->terms.cap; i++) {
            const entry_t *e = &l->terms.slots[i];
            if (!live(e))
                continue;
            ns_term_t o;
            if (!ns_termstats_get(b, l->name, l->keys.data + e->key, &o) ||
                o.df != e->df || o.count != e->count || o.nlogn != e->nlogn)
                return 0;
        }
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

/* The arena of the language being sorted (qsort has no argument). */
static _Thread_local const char *sort_keys;

static int by_term(const void *x, const void *y)
{
    const entry_t *a = *(entry_t *const *)x, *b = *(entry_t *const *)y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(sort_keys + a->key, sort_keys + b->key, n);
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
    for (size_t li = 0; li < s->n_langs; li++)
        for (size_t i = 0; i < s->langs[li].terms.cap && !used[li]; i++)
            used[li] = live(&s->langs[li].terms.slots[i]);
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
    /* Language by language in name order, each sorted on its own. */
    size_t k = 0;
    for (size_t r = 0; r < v->n_langs; r++) {
        const lang_t *l = &s->langs[v->order[r]];
        size_t first = k;
        for (size_t i = 0; i < l->terms.cap; i++)
            if (live(&l->terms.slots[i]))
                v->terms[k++] = &l->terms.slots[i];
        sort_keys = l->keys.data;
        qsort(v->terms + first, k - first, sizeof(v->terms[0]), by_term);
    }
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
        const lang_t *l = &s->langs[e->lang];
        ns_term_t t = {.lang = l->name,
                       .term = l->keys.data + e->key,
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
        put_str(&b, s->langs[e->lang].keys.data + e->key, e->len);
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
