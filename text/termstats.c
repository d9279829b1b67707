/* termstats.c: per-language term statistics counted document by document
 * (one lookup per word into per-language tables, prefetched a few words
 * ahead), merged and looked up; the sorted view and the binary form are in
 * termstats_codec.c. */
#include "ns/termstats.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "termstats_codec.h"

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

ns_err_t ns_ts_oom(ns_error_t *err)
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

int ns_ts_lang_index(ns_termstats_t *s, const char *lang, bool add)
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
    return ns_ts_lang_index((ns_termstats_t *)s, lang, false);
}

/* Copies n bytes (up to PIPE_WORD_MAX) in loads of fixed size, not a
 * call of memcpy for a few bytes. */
static inline void copy_short(char *dst, const char *src, size_t n)
{
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            memcpy(dst + i, src + i, 8);
        if (i < n)
            memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n > 0) {
        dst[0] = src[0];
        dst[n >> 1] = src[n >> 1];
        dst[n - 1] = src[n - 1];
    }
}

/* The head of a term: its first HEAD bytes, zero-padded. */
static inline void head_of(const char *term, size_t len, char head[HEAD])
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Built in two registers and stored whole: the loads of the head that
     * follow (the hash, the compare) are then forwarded from two stores,
     * not stalled behind a dozen small ones. */
    uint64_t w0 = 0, w1 = 0;
    if (len >= 16) {
        memcpy(&w0, term, 8);
        memcpy(&w1, term + 8, 8);
    } else if (len >= 8) {
        memcpy(&w0, term, 8);
        if (len > 8) { /* bytes 8 to len, from the last 8 */
            memcpy(&w1, term + len - 8, 8);
            w1 >>= 8 * (16 - len);
        }
    } else if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, term, 4);
        memcpy(&hi, term + len - 4, 4);
        w0 = lo | (uint64_t)hi << (8 * (len - 4));
    } else if (len > 0) {
        const unsigned char *u = (const unsigned char *)term;
        w0 = u[0] | (uint64_t)u[len >> 1] << (8 * (len >> 1)) |
             (uint64_t)u[len - 1] << (8 * (len - 1));
    }
    memcpy(head, &w0, 8);
    memcpy(head + 8, &w1, 8);
#else
    memset(head, 0, HEAD);
    copy_short(head, term, len < HEAD ? len : HEAD);
#endif
}

static inline bool same_head(const char *a, const char *b)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a, 8);
    memcpy(&a1, a + 8, 8);
    memcpy(&b0, b, 8);
    memcpy(&b1, b + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/* The hash of (lang, term), head the term's head_of: its first HEAD bytes
 * as two words (zero-padded: a short term costs no byte loop), then the
 * rest 8 bytes at a time, the last load overlapping (the length is in the
 * seed). Never 0. */
static inline uint64_t hash_with_head(uint32_t lang, const char *head,
                                      const char *term, size_t len)
{
    uint64_t w0, w1;
    memcpy(&w0, head, 8);
    memcpy(&w1, head + 8, 8);
    uint64_t h = (0x9e3779b97f4a7c15ull * (lang + 1)) ^ len;
    h = (h ^ w0) * 0x9fb21c651e98df25ull;
    h ^= h >> 29;
    h = (h ^ w1) * 0x9fb21c651e98df25ull;
    size_t i = HEAD;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, term + i, 8);
        h ^= h >> 29;
        h = (h ^ w) * 0x9fb21c651e98df25ull;
    }
    if (i < len) {
        uint64_t w;
        memcpy(&w, term + len - 8, 8);
        h ^= h >> 29;
        h = (h ^ w) * 0x9fb21c651e98df25ull;
    }
    h = mix64(h);
    return h ? h : 1;
}

static uint64_t hash_of(uint32_t lang, const char *term, size_t len)
{
    char head[HEAD];
    head_of(term, len, head);
    return hash_with_head(lang, head, term, len);
}

/* The slot of (lang, term), or the empty slot where it would go; head:
 * the term's (head_of). */
static inline entry_t *find_slot(const table_t *t, const arena_t *keys,
                                 uint64_t h, uint32_t lang, const char *term,
                                 size_t len, const char *head)
{
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        entry_t *e = &t->slots[i];
        if (e->hash == 0)
            return e;
        if (e->hash == h && e->len == len && e->lang == lang &&
            same_head(e->head, head) &&
            (len <= HEAD ||
             memcmp(keys->data + e->key + HEAD, term + HEAD, len - HEAD) == 0))
            return e;
    }
}

/* Empty slots for a table of cap entries, on cache lines. A table of
 * megabytes is asked to be on huge pages: a lookup is one random line of
 * it, and with 4 KB pages most lookups would also miss the TLB (the
 * prefetch of the slot walks the page table). Only a hint (THP). */
static entry_t *slots_new(size_t cap)
{
    const size_t huge = (size_t)2 << 20;
    size_t bytes = cap * sizeof(entry_t);
    entry_t *slots = aligned_alloc(bytes >= huge ? huge : 64, bytes);
    if (slots == NULL)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= huge)
        madvise(slots, bytes, MADV_HUGEPAGE);
#endif
    memset(slots, 0, bytes);
    return slots;
}

static bool grow(ns_termstats_t *s, table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    entry_t *slots = slots_new(cap);
    if (slots == NULL)
        return false;
    size_t used = 0;
    for (size_t i = 0; i < t->cap; i++) {
        entry_t *e = &t->slots[i];
        /* Empty, or emptied by a subtraction; the terms of the current
         * document have no counts yet and stay. */
        if (!ns_ts_live(e) && !(e->hash != 0 && e->doc_pos != 0))
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

/* The entry of (lang, term) whose hash is h (head: head_of the term),
 * created (with no counts) when absent; NULL when out of memory. May move
 * every entry (the table grows). */
static inline entry_t *term_entry(ns_termstats_t *s, uint64_t h, uint32_t lang,
                                  const char *term, size_t len,
                                  const char *head)
{
    lang_t *l = &s->langs[lang];
    table_t *t = &l->terms;
    if ((t->used + 1) * 4 > t->cap * 3 && !grow(s, t))
        return NULL;
    entry_t *e = find_slot(t, &l->keys, h, lang, term, len, head);
    if (e->hash == 0) {
        uint32_t off;
        if (len > UINT32_MAX || !arena_add(&l->keys, term, len, &off))
            return NULL;
        *e = (entry_t){
            .hash = h, .key = off, .len = (uint32_t)len, .lang = lang};
        memcpy(e->head, head, HEAD);
        t->used++;
    }
    return e;
}

ns_err_t ns_ts_add_term(ns_termstats_t *s, uint32_t lang, const char *term,
                        size_t len, int64_t df, int64_t count, int64_t nlogn,
                        ns_error_t *err)
{
    char head[HEAD];
    head_of(term, len, head);
    entry_t *e = term_entry(s, hash_of(lang, term, len), lang, term, len, head);
    if (e == NULL)
        return ns_ts_oom(err);
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
    int li = ns_ts_lang_index(s, lang, true);
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

/* Counts one word of the current document (h: its hash, head: its
 * head_of). */
static inline ns_err_t count_word(ns_termstats_t *s, uint64_t h,
                                  const char *word, size_t len,
                                  const char *head, ns_error_t *err)
{
    if (s->dt_used == s->dt_cap) {
        size_t cap = s->dt_cap ? s->dt_cap * 2 : 256;
        doc_term_t *d =
            cap <= UINT32_MAX ? realloc(s->dt, cap * sizeof(*d)) : NULL;
        if (d == NULL)
            return ns_ts_oom(err);
        s->dt = d;
        s->dt_cap = cap;
    }
    entry_t *e = term_entry(s, h, s->doc_lang, word, len, head);
    if (e == NULL)
        return ns_ts_oom(err);
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
        if (count_word(s, w->hash, w->word, w->len, w->head, err) != NS_OK)
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
    if (len > PIPE_WORD_MAX) {
        if (pipe_drain(s, 0, err) != NS_OK)
            return err->code;
        char head[HEAD];
        head_of(word, len, head);
        return count_word(s, hash_with_head(s->doc_lang, head, word, len), word,
                          len, head, err);
    }
    if (pipe_drain(s, PIPE - 1, err) != NS_OK)
        return err->code;
    pending_t *w = &s->pipe[(s->pipe_head + s->pipe_n) % PIPE];
    head_of(word, len, w->head);
    copy_short(w->word, word, len);
    uint64_t h = hash_with_head(s->doc_lang, w->head, word, len);
    const table_t *t = &s->langs[s->doc_lang].terms;
    if (t->cap > 0)
        __builtin_prefetch(&t->slots[h & (t->cap - 1)]);
    w->hash = h;
    w->len = len;
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
        int li = ns_ts_lang_index(s, o->langs[i].name, true);
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
            if (ns_ts_add_term(s, map[li], ol->keys.data + e->key, e->len,
                               k * e->df, k * e->count, k * e->nlogn,
                               err) != NS_OK)
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
            n += ns_ts_live(&s->langs[li].terms.slots[i]);
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
    char head[HEAD];
    head_of(term, len, head);
    const entry_t *e =
        find_slot(&l->terms, &l->keys, hash_of((uint32_t)li, term, len),
                  (uint32_t)li, term, len, head);
    if (!ns_ts_live(e))
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
            if (!ns_ts_live(e))
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
            if (!ns_ts_live(e))
                continue;
            ns_term_t o;
            if (!ns_termstats_get(b, l->name, l->keys.data + e->key, &o) ||
                o.df != e->df || o.count != e->count || o.nlogn != e->nlogn)
                return 0;
        }
    }
    return 1;
}
