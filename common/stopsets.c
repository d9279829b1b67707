#include "ns/stopsets.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: none (the key names derive from the arguments; a single-node
 * Redis). ARGV[1]: prefix, ARGV[2..]: the languages of the new version.
 * Makes every :next current (the current one becomes :prev), moves the
 * sets of languages that are gone to :prev, records the languages. */
static const char SWITCH_LUA[] =
    "local p = ARGV[1]\n"
    "local new = {}\n"
    "for i = 2, #ARGV do new[ARGV[i]] = true end\n"
    "for _, l in ipairs(redis.call('SMEMBERS', p .. ':langs')) do\n"
    "  if not new[l] and redis.call('EXISTS', p .. ':' .. l) == 1 then\n"
    "    redis.call('RENAME', p .. ':' .. l, p .. ':' .. l .. ':prev')\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', p .. ':langs')\n"
    "for i = 2, #ARGV do\n"
    "  local l = ARGV[i]\n"
    "  if redis.call('EXISTS', p .. ':' .. l) == 1 then\n"
    "    redis.call('RENAME', p .. ':' .. l, p .. ':' .. l .. ':prev')\n"
    "  end\n"
    "  if redis.call('EXISTS', p .. ':' .. l .. ':next') == 1 then\n"
    "    redis.call('RENAME', p .. ':' .. l .. ':next', p .. ':' .. l)\n"
    "    redis.call('SADD', p .. ':langs', l)\n"
    "  end\n"
    "end\n"
    "return #ARGV - 1\n";

/* ARGV[1]: prefix, ARGV[2]: a language or "" for all with a :prev. */
static const char ROLLBACK_LUA[] =
    "local p = ARGV[1]\n"
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
    "      if not seen[l] then seen[l] = true; table.insert(langs, l) end\n"
    "    end\n"
    "  until cursor == '0'\n"
    "end\n"
    "local n = 0\n"
    "for _, l in ipairs(langs) do\n"
    "  local cur, prev = p .. ':' .. l, p .. ':' .. l .. ':prev'\n"
    "  local tmp = p .. ':' .. l .. ':swap'\n"
    "  local hc, hp = redis.call('EXISTS', cur), redis.call('EXISTS', prev)\n"
    "  if hp == 1 then\n"
    "    if hc == 1 then redis.call('RENAME', cur, tmp) end\n"
    "    redis.call('RENAME', prev, cur)\n"
    "    if hc == 1 then redis.call('RENAME', tmp, prev) end\n"
    "    redis.call('SADD', p .. ':langs', l)\n"
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
    /* 1. The new version beside the current one (pipelined). */
    for (size_t i = 0; i < n; i++) {
        char key[256];
        snprintf(key, sizeof(key), "%s:%s:next", prefix, sets[i].lang);
        int pending = 0;
        redisAppendCommand(rc, "DEL %s", key);
        pending++;
        for (size_t k = 0; k < sets[i].n; k++) {
            char score[32];
            snprintf(score, sizeof(score), "%.6f", sets[i].scores[k]);
            redisAppendCommand(rc, "HSET %s %s %s", key, sets[i].words[k],
                               score);
            if (++pending == 512) {
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
