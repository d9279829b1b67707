/* logparse.c: the Drain-style template parser (ns/logparse.h). The prefix
 * tree is one array of nodes and one hash table of edges keyed by (parent,
 * token hash), so a descent is a few probes; a leaf lists its groups, and
 * a line goes to the group of the leaf with the most equal tokens. */
#include "ns/logparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logmask.h"
#include "ns/utf8.h"

/* The one <*>: template tokens are compared with it by address. */
static const char WILD[] = "<*>";
#define WILD_LEN 3

typedef struct tmpl_tok {
    const char *s; /* into the group's buf, or the static WILD */
    uint32_t len;
    uint32_t has_digit;
    uint64_t hash;
} tmpl_tok_t;

typedef struct group {
    uint64_t id, text_id, count;
    uint32_t revision, ntok, nparams;
    tmpl_tok_t *tok;
    char *buf;  /* the text at creation; tok[] points into it */
    char *text; /* the current text: buf, or its own allocation */
} group_t;

typedef struct node {
    uint64_t key_hash; /* token hash; the token count below the root */
    char *key;         /* NULL below the root */
    uint32_t key_len;
    uint32_t nconst;  /* children other than <*> */
    uint32_t *groups; /* a leaf's groups (indices) */
    uint32_t ngroups, cap;
} node_t;

typedef struct edge {
    uint64_t hash;
    uint32_t parent, child; /* child 0: empty slot (the root is no child) */
} edge_t;

typedef struct id_slot {
    uint64_t id;
    uint32_t group_plus1; /* 0: empty */
} id_slot_t;

struct ns_logparse {
    ns_logparse_opts_t opt;
    node_t *nodes;
    size_t nnodes, nodes_cap;
    edge_t *edges;
    size_t nedges, edges_mask;
    group_t **groups;
    size_t ngroups, groups_cap;
    id_slot_t *ids;
    size_t ids_mask;
    char *scratch; /* the masker's output */
    ns_logtok_t *toks;
    uint64_t wild_hash;
};

uint64_t ns_logparse_text_id(const char *text, size_t len)
{
    return ns_logmask_hash(text, len);
}

static uint64_t edge_hash(uint32_t parent, uint64_t key_hash)
{
    uint64_t h = key_hash ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    return h ^ (h >> 29);
}

static uint32_t child_of(const ns_logparse_t *p, uint32_t parent,
                         uint64_t key_hash, const char *key, uint32_t len)
{
    size_t i = edge_hash(parent, key_hash) & p->edges_mask;
    for (;; i = (i + 1) & p->edges_mask) {
        const edge_t *e = &p->edges[i];
        if (e->child == 0)
            return 0;
        const node_t *c = &p->nodes[e->child];
        if (e->parent == parent && c->key_hash == key_hash &&
            c->key_len == len && (len == 0 || memcmp(c->key, key, len) == 0))
            return e->child;
    }
}

static int edges_grow(ns_logparse_t *p)
{
    size_t cap = (p->edges_mask + 1) * 2;
    edge_t *edges = calloc(cap, sizeof(*edges));
    if (edges == NULL)
        return -1;
    for (size_t i = 0; i <= p->edges_mask; i++) {
        const edge_t *e = &p->edges[i];
        if (e->child == 0)
            continue;
        size_t j =
            edge_hash(e->parent, p->nodes[e->child].key_hash) & (cap - 1);
        while (edges[j].child != 0)
            j = (j + 1) & (cap - 1);
        edges[j] = *e;
    }
    free(p->edges);
    p->edges = edges;
    p->edges_mask = cap - 1;
    return 0;
}

/* A new child of parent with that key: its index, or 0 without memory. */
static uint32_t add_child(ns_logparse_t *p, uint32_t parent, uint64_t key_hash,
                          const char *key, uint32_t len)
{
    if ((p->nedges + 1) * 2 > p->edges_mask + 1 && edges_grow(p) != 0)
        return 0;
    if (p->nnodes == p->nodes_cap) {
        size_t cap = p->nodes_cap * 2;
        node_t *nodes = realloc(p->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return 0;
        p->nodes = nodes;
        p->nodes_cap = cap;
    }
    node_t *c = &p->nodes[p->nnodes];
    memset(c, 0, sizeof(*c));
    c->key_hash = key_hash;
    c->key_len = len;
    if (len > 0) {
        c->key = malloc(len);
        if (c->key == NULL)
            return 0;
        memcpy(c->key, key, len);
    }
    uint32_t idx = (uint32_t)p->nnodes++;
    size_t i = edge_hash(parent, key_hash) & p->edges_mask;
    while (p->edges[i].child != 0)
        i = (i + 1) & p->edges_mask;
    p->edges[i] = (edge_t){key_hash, parent, idx};
    p->nedges++;
    if (len > 0 && !(len == WILD_LEN && memcmp(key, WILD, WILD_LEN) == 0))
        p->nodes[parent].nconst++;
    return idx;
}

static uint32_t wild_child(ns_logparse_t *p, uint32_t parent, int create)
{
    uint32_t c = child_of(p, parent, p->wild_hash, WILD, WILD_LEN);
    if (c == 0 && create)
        c = add_child(p, parent, p->wild_hash, WILD, WILD_LEN);
    return c;
}

static size_t tree_depth(const ns_logparse_t *p, size_t ntok)
{
    return ntok < p->opt.depth ? ntok : p->opt.depth;
}

/* The leaf a line of these tokens belongs to (0: none yet). Tokens with
 * digits, and tokens without a child of their own, go down the <*> edge. */
static uint32_t find_leaf(const ns_logparse_t *p, const ns_logtok_t *t,
                          size_t n)
{
    uint32_t cur = child_of(p, 0, n, NULL, 0);
    for (size_t i = 0; cur != 0 && i < tree_depth(p, n); i++) {
        uint32_t c = 0;
        if (!t[i].has_digit)
            c = child_of(p, cur, t[i].hash, t[i].s, t[i].len);
        cur = c != 0 ? c : child_of(p, cur, p->wild_hash, WILD, WILD_LEN);
    }
    return cur;
}

/* The leaf for a new group, made as needed: a node takes max_children - 1
 * constant children, then the rest share its <*> child. */
static uint32_t make_leaf(ns_logparse_t *p, const ns_logtok_t *t, size_t n)
{
    uint32_t cur = child_of(p, 0, n, NULL, 0);
    if (cur == 0)
        cur = add_child(p, 0, n, NULL, 0);
    for (size_t i = 0; cur != 0 && i < tree_depth(p, n); i++) {
        if (t[i].has_digit) {
            cur = wild_child(p, cur, 1);
            continue;
        }
        uint32_t c = child_of(p, cur, t[i].hash, t[i].s, t[i].len);
        if (c == 0 && p->nodes[cur].nconst + 1 < p->opt.max_children)
            c = add_child(p, cur, t[i].hash, t[i].s, t[i].len);
        cur = c != 0 ? c : wild_child(p, cur, 1);
    }
    return cur;
}

static int tok_eq(const tmpl_tok_t *a, const ns_logtok_t *b)
{
    return a->hash == b->hash && a->len == b->len &&
           memcmp(a->s, b->s, a->len) == 0;
}

/* The similarity: tokens of the template that cover the line's over all
 * tokens. A <*> covers anything (Drain counts it as unequal, which makes a
 * template drift away from the very lines that generalised it); two
 * tokens that both still have digits after masking (2.36-9+deb12u4,
 * libc6) cover each other, as the tree already treats them as variables;
 * other tokens must be equal. */
static size_t equal_tokens(const group_t *g, const ns_logtok_t *t, size_t n)
{
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        const tmpl_tok_t *a = &g->tok[i];
        if (a->s == WILD ||
            ((a->has_digit && t[i].has_digit) || tok_eq(a, &t[i])))
            same++;
    }
    return same;
}

/* The group of the leaf most similar to the tokens, if similar enough;
 * ties go to the group with more <*>. */
static group_t *best_group(const ns_logparse_t *p, uint32_t leaf,
                           const ns_logtok_t *t, size_t n)
{
    const node_t *l = &p->nodes[leaf];
    group_t *best = NULL;
    size_t best_same = 0;
    for (uint32_t k = 0; k < l->ngroups; k++) {
        group_t *g = p->groups[l->groups[k]];
        size_t same = equal_tokens(g, t, n);
        if (same == n)
            return g; /* covers every token: nothing can beat it */
        if (best == NULL || same > best_same ||
            (same == best_same && g->nparams > best->nparams)) {
            best = g;
            best_same = same;
        }
    }
    if (best == NULL)
        return NULL;
    if (n > 0 && (double)best_same < p->opt.sim_threshold * (double)n - 1e-9)
        return NULL;
    return best;
}

/* tok[] joined by single spaces, malloc'd. */
static char *join_tokens(const tmpl_tok_t *tok, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += tok[i].len + 1;
    char *text = malloc(len + 1);
    if (text == NULL)
        return NULL;
    char *o = text;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *o++ = ' ';
        memcpy(o, tok[i].s, tok[i].len);
        o += tok[i].len;
    }
    *o = '\0';
    return text;
}

/* Merges a line into g: tokens that differ become <*>. */
static ns_err_t merge(ns_logparse_t *p, group_t *g, const ns_logtok_t *t,
                      ns_error_t *err)
{
    int changed = 0;
    for (uint32_t i = 0; i < g->ntok; i++) {
        if (g->tok[i].s == WILD || tok_eq(&g->tok[i], &t[i]))
            continue;
        g->tok[i] = (tmpl_tok_t){WILD, WILD_LEN, 0, p->wild_hash};
        g->nparams++;
        changed = 1;
    }
    g->count++;
    if (!changed)
        return NS_OK;
    char *text = join_tokens(g->tok, g->ntok);
    if (text == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "logparse: out of memory");
    if (g->text != g->buf)
        free(g->text);
    g->text = text;
    g->text_id = ns_logmask_hash(text, strlen(text));
    g->revision++;
    return NS_OK;
}

static group_t *group_by_id(const ns_logparse_t *p, uint64_t id)
{
    for (size_t i = id & p->ids_mask;; i = (i + 1) & p->ids_mask) {
        if (p->ids[i].group_plus1 == 0)
            return NULL;
        if (p->ids[i].id == id)
            return p->groups[p->ids[i].group_plus1 - 1];
    }
}

static int ids_put(ns_logparse_t *p, uint64_t id, uint32_t group)
{
    if ((p->ngroups + 1) * 2 > p->ids_mask + 1) {
        size_t cap = (p->ids_mask + 1) * 2;
        id_slot_t *ids = calloc(cap, sizeof(*ids));
        if (ids == NULL)
            return -1;
        for (size_t i = 0; i <= p->ids_mask; i++) {
            if (p->ids[i].group_plus1 == 0)
                continue;
            size_t j = p->ids[i].id & (cap - 1);
            while (ids[j].group_plus1 != 0)
                j = (j + 1) & (cap - 1);
            ids[j] = p->ids[i];
        }
        free(p->ids);
        p->ids = ids;
        p->ids_mask = cap - 1;
    }
    size_t i = id & p->ids_mask;
    while (p->ids[i].group_plus1 != 0)
        i = (i + 1) & p->ids_mask;
    p->ids[i] = (id_slot_t){id, group + 1};
    return 0;
}

/* The id of a new group of that text: its hash, or on a collision the
 * hash continued with a NUL and a counter byte. 0 when all are taken. */
static uint64_t fresh_id(const ns_logparse_t *p, const char *text)
{
    uint64_t h = ns_logmask_hash(text, strlen(text));
    for (unsigned c = 0; c < 256; c++) {
        uint64_t id = h;
        if (c > 0) {
            id = (id ^ 0) * 0x100000001b3ULL;
            id = (id ^ c) * 0x100000001b3ULL;
        }
        if (id != 0 && group_by_id(p, id) == NULL)
            return id;
    }
    return 0;
}

static void group_free(group_t *g)
{
    if (g == NULL)
        return;
    if (g->text != g->buf)
        free(g->text);
    free(g->buf);
    free(g->tok);
    free(g);
}

/* A new group of tokens t in the tree, in *out; id 0: a fresh one. */
static ns_err_t create_group(ns_logparse_t *p, const ns_logtok_t *t, size_t n,
                             uint64_t id, uint64_t count, group_t **out,
                             ns_error_t *err)
{
    if (p->ngroups >= p->opt.max_templates)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "logparse: template limit (%zu) reached",
                            p->opt.max_templates);
    group_t *g = calloc(1, sizeof(*g));
    if (g == NULL || (n > 0 && (g->tok = malloc(n * sizeof(*g->tok))) == NULL))
        goto nomem;
    for (size_t i = 0; i < n; i++)
        g->tok[i] = (tmpl_tok_t){t[i].s, t[i].len, t[i].has_digit, t[i].hash};
    g->buf = join_tokens(g->tok, n);
    if (g->buf == NULL)
        goto nomem;
    /* Point the tokens into buf, which outlives the masker's scratch. */
    const char *o = g->buf;
    for (size_t i = 0; i < n; i++) {
        int wild = t[i].len == WILD_LEN && memcmp(t[i].s, WILD, WILD_LEN) == 0;
        g->tok[i].s = wild ? WILD : o;
        g->nparams += (uint32_t)wild;
        o += t[i].len + 1;
    }
    g->text = g->buf;
    g->ntok = (uint32_t)n;
    g->count = count;
    g->text_id = ns_logmask_hash(g->buf, strlen(g->buf));
    g->id = id != 0 ? id : fresh_id(p, g->buf);
    if (g->id == 0) {
        ns_error_set(err, NS_ERR_INVALID, "logparse: no free id for \"%.64s\"",
                     g->buf);
        group_free(g);
        return NS_ERR_INVALID;
    }
    uint32_t leaf = make_leaf(p, t, n);
    if (leaf == 0)
        goto nomem;
    node_t *l = &p->nodes[leaf];
    if (l->ngroups == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        uint32_t *gs = realloc(l->groups, cap * sizeof(*gs));
        if (gs == NULL)
            goto nomem;
        l->groups = gs;
        l->cap = cap;
    }
    if (p->ngroups == p->groups_cap) {
        size_t cap = p->groups_cap ? p->groups_cap * 2 : 64;
        group_t **gs = realloc(p->groups, cap * sizeof(*gs));
        if (gs == NULL)
            goto nomem;
        p->groups = gs;
        p->groups_cap = cap;
    }
    if (ids_put(p, g->id, (uint32_t)p->ngroups) != 0)
        goto nomem;
    l->groups[l->ngroups++] = (uint32_t)p->ngroups;
    p->groups[p->ngroups++] = g;
    *out = g;
    return NS_OK;
nomem:
    group_free(g);
    return ns_error_set(err, NS_ERR_NOMEM, "logparse: out of memory");
}

/* 1 when s has a byte >= 0x80 or a NUL, eight bytes at a time. */
static int maybe_not_ascii(const char *s, size_t len)
{
    const uint64_t high = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if ((w & high) || ((w - ones) & ~w & high))
            return 1;
    }
    for (; i < len; i++)
        if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
            return 1;
    return 0;
}

/* Checks and masks a line into p->toks: the token count, or -1. */
static long prepare(ns_logparse_t *p, const char *line, size_t len,
                    ns_error_t *err)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > p->opt.max_line_len) {
        ns_error_set(err, NS_ERR_PERMANENT,
                     "line of %zu bytes is over the limit of %zu", len,
                     p->opt.max_line_len);
        return -1;
    }
    if (maybe_not_ascii(line, len)) {
        long bad = ns_utf8_invalid_at(line, len);
        if (bad >= 0) {
            ns_error_set(err, NS_ERR_PERMANENT,
                         "invalid UTF-8 (or a NUL byte) at byte %ld", bad);
            return -1;
        }
    }
    return (long)ns_logmask(line, len, p->opt.keep_kv_values, p->scratch,
                            p->toks);
}

ns_err_t ns_logparse_add(ns_logparse_t *p, const char *line, size_t len,
                         uint64_t *template_id, ns_error_t *err)
{
    *template_id = 0;
    long n = prepare(p, line, len, err);
    if (n < 0)
        return NS_ERR_PERMANENT;
    uint32_t leaf = find_leaf(p, p->toks, (size_t)n);
    group_t *g = leaf ? best_group(p, leaf, p->toks, (size_t)n) : NULL;
    if (g != NULL) {
        ns_err_t rc = merge(p, g, p->toks, err);
        if (rc == NS_OK)
            *template_id = g->id;
        return rc;
    }
    ns_err_t rc = create_group(p, p->toks, (size_t)n, 0, 1, &g, err);
    if (rc == NS_OK)
        *template_id = g->id;
    return rc;
}

ns_err_t ns_logparse_match(ns_logparse_t *p, const char *line, size_t len,
                           uint64_t *template_id, ns_error_t *err)
{
    *template_id = 0;
    long n = prepare(p, line, len, err);
    if (n < 0)
        return NS_ERR_PERMANENT;
    uint32_t leaf = find_leaf(p, p->toks, (size_t)n);
    const group_t *g = leaf ? best_group(p, leaf, p->toks, (size_t)n) : NULL;
    if (g == NULL)
        return NS_ERR_NOT_FOUND;
    *template_id = g->id;
    return NS_OK;
}

ns_err_t ns_logparse_load(ns_logparse_t *p, uint64_t id, const char *text,
                          uint64_t count, ns_error_t *err)
{
    size_t len = strlen(text);
    if (id == 0 || group_by_id(p, id) != NULL)
        return ns_error_set(err, NS_ERR_INVALID,
                            "logparse: template id %016llx is taken",
                            (unsigned long long)id);
    if (len > p->opt.max_line_len || ns_utf8_invalid_at(text, len) >= 0)
        return ns_error_set(err, NS_ERR_INVALID,
                            "logparse: template %016llx is too long or not "
                            "UTF-8",
                            (unsigned long long)id);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && text[i] == ' ')
            i++;
        size_t j = i;
        while (j < len && text[j] != ' ')
            j++;
        if (j > i) {
            ns_logtok_t *t = &p->toks[n++];
            *t = (ns_logtok_t){.s = text + i, .len = (uint32_t)(j - i)};
            t->hash = ns_logmask_hash(t->s, t->len);
            for (size_t k = i; k < j; k++)
                t->has_digit |= (unsigned)(text[k] - '0') < 10u;
        }
        i = j;
    }
    group_t *g;
    return create_group(p, p->toks, n, id, count, &g, err);
}

ns_logparse_t *ns_logparse_new(const ns_logparse_opts_t *opts, char *err,
                               size_t errlen)
{
    ns_logparse_opts_t o = opts ? *opts : (ns_logparse_opts_t){0};
    if (o.sim_threshold == 0)
        o.sim_threshold = 0.5;
    if (o.depth == 0)
        o.depth = 2;
    if (o.max_children == 0)
        o.max_children = 100;
    if (o.max_templates == 0)
        o.max_templates = 50000;
    if (o.max_line_len == 0)
        o.max_line_len = 65536;
    if (!(o.sim_threshold > 0 && o.sim_threshold <= 1) || o.max_children < 2 ||
        o.max_templates > UINT32_MAX / 2 || o.max_line_len > (1u << 28)) {
        snprintf(err, errlen,
                 "logparse: sim_threshold must be in (0, 1], max_children "
                 ">= 2, max_templates and max_line_len sane");
        return NULL;
    }
    ns_logparse_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto nomem;
    p->opt = o;
    p->wild_hash = ns_logmask_hash(WILD, WILD_LEN);
    p->nodes_cap = 64;
    p->nodes = calloc(p->nodes_cap, sizeof(*p->nodes));
    p->nnodes = 1; /* the root */
    p->edges_mask = 63;
    p->edges = calloc(p->edges_mask + 1, sizeof(*p->edges));
    p->ids_mask = 63;
    p->ids = calloc(p->ids_mask + 1, sizeof(*p->ids));
    p->scratch = malloc(NS_LOGMASK_OUT_CAP(o.max_line_len));
    p->toks = malloc(NS_LOGMASK_TOK_CAP(o.max_line_len) * sizeof(*p->toks));
    if (p->nodes && p->edges && p->ids && p->scratch && p->toks)
        return p;
nomem:
    ns_logparse_destroy(p);
    snprintf(err, errlen, "logparse: out of memory");
    return NULL;
}

void ns_logparse_destroy(ns_logparse_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->ngroups; i++)
        group_free(p->groups[i]);
    for (size_t i = 0; i < p->nnodes && p->nodes; i++) {
        free(p->nodes[i].key);
        free(p->nodes[i].groups);
    }
    free(p->groups);
    free(p->nodes);
    free(p->edges);
    free(p->ids);
    free(p->scratch);
    free(p->toks);
    free(p);
}

static void fill(const group_t *g, ns_logtemplate_t *out)
{
    *out =
        (ns_logtemplate_t){g->id, g->text_id, g->text, g->count, g->revision};
}

const char *ns_logparse_template(const ns_logparse_t *p, uint64_t id)
{
    const group_t *g = group_by_id(p, id);
    return g ? g->text : NULL;
}

int ns_logparse_get(const ns_logparse_t *p, uint64_t id, ns_logtemplate_t *out)
{
    const group_t *g = group_by_id(p, id);
    if (g == NULL)
        return 0;
    fill(g, out);
    return 1;
}

size_t ns_logparse_count(const ns_logparse_t *p)
{
    return p->ngroups;
}

void ns_logparse_each(const ns_logparse_t *p,
                      void (*fn)(const ns_logtemplate_t *t, void *arg),
                      void *arg)
{
    for (size_t i = 0; i < p->ngroups; i++) {
        ns_logtemplate_t t;
        fill(p->groups[i], &t);
        fn(&t, arg);
    }
}
