/* logparse.h: groups log lines into templates ("Connection from <IP> closed")
 * online, with a parser of the Drain family: variable parts masked into typed
 * placeholders, then a fixed-depth prefix tree and a similarity threshold.
 *
 * Masking (before the tree), per whitespace-separated token, after peeling
 * the leading ( [ { < " ' ` and trailing ) ] } > " ' ` , ; : . ! ? as
 * constant affixes:
 *   <URL>   scheme://...          <EMAIL> local@domain.tld
 *   <UUID>  8-4-4-4-12 hex        <IP>    IPv4 (:port, /prefix), IPv6
 *   <PATH>  /a/b, ./a, ~/a, C:\a  <HEX>   0x1f, hex runs of 8+ with a digit
 *   <TS>    ISO 8601 dates/times, "Dec  3 10:50:33" (RFC 3164, with an
 *           optional weekday before and year after), 3 Dec 2024 10:50:33,
 *           03/Dec/2024:10:50:33,
 *           a time with a +hhmm offset, epoch-like numbers (10/13/16/19
 *           digits starting with 1)
 *   <DUR>   12ms, 1.5s, 3m, 2h30m (ns us µs ms s m h d min sec)
 *   <NUM>   integers, decimals, exponents, dotted numbers (1.2.3)
 *   key=value: the value is masked by its kind, else <*>
 *           (unless keep_kv_values).
 * A token none of these fit, but with digits, is cut at punctuation (all but
 * . _ - +) and its pieces masked: "sshd[1234]:" becomes "sshd[<NUM>]:".
 * The template text is the masked tokens joined by one space; <*> marks
 * where lines of one group differ.
 *
 * Template ids: a group's id is the FNV-1a 64-bit hash (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3) of its template text when the
 * group was created, so the same text gets the same id in every process.
 * When later lines generalise a group ("User bob" + "User amy" -> "User
 * <*>") its text changes but its id does NOT: the group keeps the id it
 * was created with, its current text is ns_logparse_template(), its
 * revision counts the changes and text_id is the hash of the current text
 * (for callers that want to recognise the same final text elsewhere).
 * Keep templates in Postgres by id and upsert the text when the revision
 * moved; ns_logparse_load() puts them back into a new handle. Two groups
 * created with equal texts (rare: the tree routed them apart) would share
 * an id; the later one then gets the hash of its text followed by a NUL
 * byte and a counter byte (1, 2, ...).
 *
 * Threads: a handle is not thread-safe, not even ns_logparse_match (it uses
 * the handle's scratch buffers): use one handle per thread. */
#ifndef NS_LOGPARSE_H
#define NS_LOGPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "ns/err.h"

typedef struct ns_logparse ns_logparse_t;

/** Options; zero fields take the defaults. */
typedef struct ns_logparse_opts {
    /** A line joins the most similar group of its leaf when the share of
     *  its tokens that group's template covers (equal, <*>, or both with
     *  digits) is at least this; 0 < t <= 1, default 0.5. */
    double sim_threshold;
    unsigned depth;        /**< tokens used as tree keys; default 2 */
    unsigned max_children; /**< per tree node; default 100 */
    size_t max_templates;  /**< default 50000 */
    size_t max_line_len;   /**< bytes; default 65536 */
    /** 0 (default): key=value values that fit no kind become <*>;
     *  1: they stay as they are (only typed values are masked). */
    int keep_kv_values;
} ns_logparse_opts_t;

/** One template, as ns_logparse_each() reports it. */
typedef struct ns_logtemplate {
    uint64_t id;       /**< given at creation, never changes */
    uint64_t text_id;  /**< FNV-1a of the current text (== id until the
                          first generalisation) */
    const char *text;  /**< current text; valid until the next add */
    uint64_t count;    /**< lines added to it (plus a loaded count) */
    uint32_t revision; /**< 0 as created or loaded, +1 per generalisation */
} ns_logtemplate_t;

/** @brief A parser with opts (NULL: the defaults).
 *  @returns the handle, or NULL with the cause in err (errlen bytes). */
ns_logparse_t *ns_logparse_new(const ns_logparse_opts_t *opts, char *err,
                               size_t errlen);

/** @brief Frees p and its templates. NULL is a no-op. */
void ns_logparse_destroy(ns_logparse_t *p);

/** @brief Groups one line (len bytes, no NUL needed; a trailing \\n or
 *  \\r\\n is ignored): merges it into the most similar template of its
 *  tree leaf (which may generalise that template) or creates one.
 *  @returns NS_OK with the group's id in *template_id; NS_ERR_PERMANENT
 *  for a line over max_line_len, with invalid UTF-8 or a NUL byte, or a
 *  new template when max_templates exist already (*template_id = 0). */
ns_err_t ns_logparse_add(ns_logparse_t *p, const char *line, size_t len,
                         uint64_t *template_id, ns_error_t *err);

/** @brief The regular path: the template ns_logparse_add() would put line
 *  into, without changing any template, count or the tree.
 *  @returns NS_OK with its id; NS_ERR_NOT_FOUND when add would create a
 *  template; NS_ERR_PERMANENT for a refused line (as add).
 *  @remark Not const: it uses the handle's scratch buffers. */
ns_err_t ns_logparse_match(ns_logparse_t *p, const char *line, size_t len,
                           uint64_t *template_id, ns_error_t *err);

/** @brief Puts a known template back (from Postgres): text as the parser
 *  wrote it (tokens joined by one space, <*> and placeholders included),
 *  with its id and count. @returns NS_OK; NS_ERR_INVALID when id is
 *  already taken or the text is not a template; NS_ERR_PERMANENT at the
 *  limit. */
ns_err_t ns_logparse_load(ns_logparse_t *p, uint64_t id, const char *text,
                          uint64_t count, ns_error_t *err);

/** @brief The current text of template id, or NULL when there is none.
 *  Valid until the next add or load. */
const char *ns_logparse_template(const ns_logparse_t *p, uint64_t id);

/** @brief Fills *out with template id. @returns 1, or 0 when absent. */
int ns_logparse_get(const ns_logparse_t *p, uint64_t id, ns_logtemplate_t *out);

/** @brief The number of templates. */
size_t ns_logparse_count(const ns_logparse_t *p);

/** @brief Calls fn for every template in creation order. fn must not add
 *  to p. */
void ns_logparse_each(const ns_logparse_t *p,
                      void (*fn)(const ns_logtemplate_t *t, void *arg),
                      void *arg);

/** @brief FNV-1a 64 of text[0..len): the id a template of that text gets
 *  at creation. */
uint64_t ns_logparse_text_id(const char *text, size_t len);

#endif
