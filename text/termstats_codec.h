/* termstats_codec.h: the tables of term statistics (termstats.c), as
 * their binary form and ordered walk (termstats_codec.c) read and rebuild
 * them; private to text/. */
#ifndef NS_TERMSTATS_CODEC_H
#define NS_TERMSTATS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ns/termstats.h"

#define MAX_LANGS 255
#define LANG_MAX 16

/* The first HEAD bytes of a term, zero-padded, are kept in its entry: a
 * lookup compares them (two 64-bit words) on the cache line it has already
 * loaded, and reads the arena only for the bytes of a longer term. An
 * entry is one cache line. */
#define HEAD 16

typedef struct entry {
    uint64_t hash; /* 0: empty slot */
    char head[HEAD];
    uint32_t key; /* offset of the term in the arena */
    uint32_t len;
    uint32_t lang;
    uint32_t doc_pos; /* 1 + its place in the current document's list; 0 */
    int64_t df, count, nlogn;
} entry_t;

_Static_assert(sizeof(entry_t) == 64, "an entry is one cache line");

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
    char head[HEAD]; /* head_of the word */
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

/* Whether an entry holds a term with statistics (not empty, not zeroed by
 * a subtraction). */
static inline bool ns_ts_live(const entry_t *e)
{
    return e->hash != 0 && (e->df != 0 || e->count != 0 || e->nlogn != 0);
}

/** @brief Sets err to "out of memory". @returns NS_ERR_NOMEM. */
ns_err_t ns_ts_oom(ns_error_t *err);

/** @brief The index of language name in s, added when absent and add is
 *  set; -1 when absent (or s has MAX_LANGS already). */
int ns_ts_lang_index(ns_termstats_t *s, const char *name, bool add);
/** @brief Adds df, count and nlogn to (language index lang, term),
 *  creating it. */
ns_err_t ns_ts_add_term(ns_termstats_t *s, uint32_t lang, const char *term,
                        size_t len, int64_t df, int64_t count, int64_t nlogn,
                        ns_error_t *err);

#endif
