#include "ns/stopsets.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A language's version is the pair PREFIX:{lang} (the set, a hash) and
 * PREFIX:{lang}:ranked (the ranked list, a sorted set); both switch, and
 * roll back, together. In the scripts, V(l) names the pair. */
#define LUA_VERSION                                                            \
    "local p = ARGV[1]\n"                                                      \
    "local function V(l) return {p .. ':' .. l, p .. ':' .. l .. ':ranked'} "  \
    "end\n"                                                                    \
    "local function has(k) return redis.call('EXISTS', k) == 1 end\n"

/* KEYS: none (the key names derive from the arguments; a single-node
 * Redis). ARGV[1]: prefix, ARGV[2..]: the languages of the new version.
 * Makes every :next current; the current version becomes :prev (a key it
 * lacked leaves no :prev); languages that are gone move to :prev too;
 * records the languages that have a set or a ranked list. */
static const char SWITCH_LUA[] =
    LUA_VERSION "local function retire(l)\n"
                "  local ks = V(l)\n"
                "  if not has(ks[1]) and not has(ks[2]) then return end\n"
                "  for _, k in ipairs(ks) do\n"
                "    if has(k) then redis.call('RENAME', k, k .. ':prev')\n"
                "    else redis.call('DEL', k .. ':prev') end\n"
                "  end\n"
                "end\n"
                "local new = {}\n"
                "for i = 2, #ARGV do new[ARGV[i]] = true end\n"
                "for _, l in ipairs(redis.call('SMEMBERS', p .. ':langs')) do\n"
                "  if not new[l] then retire(l) end\n"
                "end\n"
                "redis.call('DEL', p .. ':langs')\n"
                "for i = 2, #ARGV do\n"
                "  local l = ARGV[i]\n"
                "  retire(l)\n"
                "  local live = false\n"
                "  for _, k in ipairs(V(l)) do\n"
                "    if has(k .. ':next') then\n"
                "      redis.call('RENAME', k .. ':next', k)\n"
                "      live = true\n"
                "    end\n"
                "  end\n"
                "  if live then redis.call('SADD', p .. ':langs', l) end\n"
                "end\n"
                "return #ARGV - 1\n";

/* ARGV[1]: prefix, ARGV[2]: a language or "" for all with a :prev. */
static const char ROLLBACK_LUA[] = LUA_VERSION
    "local langs = {}\n"
    "if ARGV[2] ~= '' then langs = {ARGV[2]} else\n"
    "  local cur = redis.call('SMEMBERS', p .. ':langs')\n"
    "  local seen = {}\n"
    "  for _, l in ipairs(cur) do seen[l] = true; table.insert(langs, l) end\n"
    "  local cursor = '0'\n"
    "  repeat\n"
    "    local r = redis.call('SCAN', cursor, 'MATCH', p .. ':*:prev',\n"
    "                         'COUNT', 1000)\n"
    "    cursor = r[1]\n"
    "    for _, k in ipairs(r[2]) do\n"
    "      local l = string.sub(k, #p + 2, #k - 5)\n"
    "      if string.sub(l, -7) == ':ranked' then\n"
    "        l = string.sub(l, 1, #l - 7)\n"
    "      end\n"
    "      if not seen[l] then seen[l] = true; table.insert(langs, l) end\n"
    "    end\n"
    "  until cursor == '0'\n"
    "end\n"
    "local function swap(cur)\n"
    "  local prev, tmp = cur .. ':prev', cur .. ':swap'\n"
    "  local hc, hp = has(cur), has(prev)\n"
    "  if hc then redis.call('RENAME', cur, tmp) end\n"
    "  if hp then redis.call('RENAME', prev, cur) end\n"
    "  if hc then redis.call('RENAME', tmp, prev) end\n"
    "end\n"
    "local n = 0\n"
    "for _, l in ipairs(langs) do\n"
    "  local ks = V(l)\n"
    "  if has(ks[1] .. ':prev') or has(ks[2] .. ':prev') then\n"
    "    swap(ks[1])\n"
    "    swap(ks[2])\n"
    "    if has(ks[1]) or has(ks[2]) then redis.call('SADD', p .. ':langs', "
    "l)\n"
    "    else redis.call('SREM', p .. ':langs', l) end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Errors a later try may not meet: the connection, or a server that
 * cannot take writes for now. Anything else (WRONGTYPE, ...) is permanent. */
static bool transient(redisContext *rc, const redisReply *r)
{
    static const char *const codes[] = {"LOADING",  "BUSY",        "MASTERDOWN",
                                        "TRYAGAIN", "NOREPLICAS",  "READONLY",
                                        "OOM",      "CLUSTERDOWN", NULL};
    if (rc->err || r == NULL)
        return true;
    if (r->type != REDIS_REPLY_ERROR)
        return false; /* an answer we do not understand */
    for (int i = 0; codes[i] != NULL; i++)
        if (strncmp(r->str, codes[i], strlen(codes[i])) == 0)
            return true;
    return false;
}

static ns_err_t reply_error(redisContext *rc, redisReply *r, const char *what,
                            ns_error_t *err)
{
    ns_err_t code = transient(rc, r) ? NS_ERR_TRANSIENT : NS_ERR_PERMANENT;
    ns_error_set(err, code, "redis %s: %s", what,
                 rc->err                             ? rc->errstr
                 : r && r->type == REDIS_REPLY_ERROR ? r->str
                                                     : "unexpected reply");
    freeReplyObject(r);
    return code;
}

/* Reads the replies of `pending` pipelined commands; the first error
 * wins. */
static ns_err_t drain(redisContext *rc, int pending, const char *what,
                      ns_error_t *err)
{
    ns_err_t out = NS_OK;
    for (int i = 0; i < pending; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK)
            return reply_error(rc, NULL, what, err);
        if (r->type == REDIS_REPLY_ERROR && out == NS_OK)
            out = reply_error(rc, r, what, err);
        else
            freeReplyObject(r);
    }
    return out;
}

ns_err_t ns_stopsets_publish(redisContext *rc, const char *prefix,
                             const ns_stopset_t *sets, size_t n,
                             ns_error_t *err)
{
    /* 1. The new version beside the current one (pipelined): the set's
     * words, and the ranked list's with their scores in full precision
     * (ZREVRANGE reads the list back in its order). */
    for (size_t i = 0; i < n; i++) {
        char key[256], ranked[256];
        snprintf(key, sizeof(key), "%s:%s:next", prefix, sets[i].lang);
        snprintf(ranked, sizeof(ranked), "%s:%s:ranked:next", prefix,
                 sets[i].lang);
        size_t n_ranked =
            sets[i].n_ranked > sets[i].n ? sets[i].n_ranked : sets[i].n;
        int pending = 0;
        redisAppendCommand(rc, "DEL %s %s", key, ranked);
        pending++;
        for (size_t k = 0; k < n_ranked; k++) {
            char score[32];
            if (k < sets[i].n) {
                snprintf(score, sizeof(score), "%.6f", sets[i].scores[k]);
                redisAppendCommand(rc, "HSET %s %s %s", key, sets[i].words[k],
                                   score);
                pending++;
            }
            snprintf(score, sizeof(score), "%.17g", sets[i].scores[k]);
            redisAppendCommand(rc, "ZADD %s %s %s", ranked, score,
                               sets[i].words[k]);
            if (++pending >= 512) {
                if (drain(rc, pending, "writing a stopword set", err) != NS_OK)
                    return err->code;
                pending = 0;
            }
        }
        if (drain(rc, pending, "writing a stopword set", err) != NS_OK)
            return err->code;
    }
    /* 2. The switch, all languages in one script. */
    size_t argc = 4 + n;
    const char **av = calloc(argc, sizeof(*av));
    size_t *lv = calloc(argc, sizeof(*lv));
    if (av == NULL || lv == NULL) {
        free(av);
        free(lv);
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    }
    av[0] = "EVAL";
    av[1] = SWITCH_LUA;
    av[2] = "0";
    av[3] = prefix;
    for (size_t i = 0; i < n; i++)
        av[4 + i] = sets[i].lang;
    for (size_t i = 0; i < argc; i++)
        lv[i] = strlen(av[i]);
    redisReply *r = redisCommandArgv(rc, (int)argc, av, lv);
    free(av);
    free(lv);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return reply_error(rc, r, "switching the stopword sets", err);
    freeReplyObject(r);
    return NS_OK;
}

ns_err_t ns_stopsets_rollback(redisContext *rc, const char *prefix,
                              const char *lang, int *swapped, ns_error_t *err)
{
    redisReply *r = redisCommand(rc, "EVAL %s 0 %s %s", ROLLBACK_LUA, prefix,
                                 lang ? lang : "");
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return reply_error(rc, r, "rolling back the stopword sets", err);
    *swapped = (int)r->integer;
    freeReplyObject(r);
    return NS_OK;
}

ns_err_t ns_stopsets_current(redisContext *rc, const char *prefix,
                             const char *lang, char ***words, size_t *n,
                             ns_error_t *err)
{
    *words = NULL;
    *n = 0;
    redisReply *r = redisCommand(rc, "HKEYS %s:%s", prefix, lang);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return reply_error(rc, r, "reading a stopword set", err);
    if (r->elements > 0) {
        *words = calloc(r->elements, sizeof(char *));
        if (*words == NULL) {
            freeReplyObject(r);
            return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < r->elements; i++)
            (*words)[(*n)++] = strdup(r->element[i]->str);
    }
    freeReplyObject(r);
    return NS_OK;
}
