/* logmask.h: the masking tokenizer behind logparse.c (internal to text/):
 * cuts a log line into tokens and replaces their variable parts by typed
 * placeholders (<NUM>, <IP>, <TS>, ...), as ns/logparse.h documents. */
#ifndef NS_LOGMASK_H
#define NS_LOGMASK_H

#include <stddef.h>
#include <stdint.h>

/** One masked token. */
typedef struct ns_logtok {
    const char *s; /**< in the caller's output buffer, not NUL-terminated */
    uint32_t len;
    uint8_t has_digit; /**< the tree sends such tokens to its <*> branch */
    uint8_t kind;      /**< internal: what the masker saw (timestamps) */
    uint8_t pre, suf;  /**< internal: peeled affix lengths (capped) */
    uint64_t hash;     /**< ns_logmask_hash() of the token */
} ns_logtok_t;

/** @brief Bytes of output buffer ns_logmask() needs for a len-byte line. */
#define NS_LOGMASK_OUT_CAP(len) (4 * (len) + 64)
/** @brief Tokens ns_logmask() may produce for a len-byte line. */
#define NS_LOGMASK_TOK_CAP(len) ((len) / 2 + 2)

/** @brief Masks line[0..len) into out (NS_LOGMASK_OUT_CAP(len) bytes) and
 *  toks (NS_LOGMASK_TOK_CAP(len) entries); keep_kv leaves key=value values
 *  of no kind unmasked. @returns the number of tokens. */
size_t ns_logmask(const char *line, size_t len, int keep_kv, char *out,
                  ns_logtok_t *toks);

/** @brief FNV-1a 64 of s[0..len). */
static inline uint64_t ns_logmask_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
