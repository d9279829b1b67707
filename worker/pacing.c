/* pacing.c: the outbox's send rates (see pacing.h). One table for every
 * channel: a channel's limits are rows here, not code. */
#include "pacing.h"

#include <stdio.h>
#include <string.h>

#include "ns/log.h"

typedef enum scope {
    SCOPE_CHANNEL, /* one bucket for the whole channel (the bot) */
    SCOPE_TARGET,  /* one per target (chat, recipient list) */
    SCOPE_GROUP,   /* one per Telegram group, supergroup or channel */
} scope_t;

/* Telegram: "avoid sending more than one message per second" to a chat,
 * "no more than 20 messages per minute to the same group", about 30
 * messages per second per bot overall (Bot API FAQ). SMTP relays limit
 * per account; 60 a minute is a common allowance. Teams throttles an
 * incoming webhook beyond 4 requests a second. A burst of 1 per chat
 * and group holds the documented rates in every window, so 429 stays the
 * exception; the bot-wide bucket may burst. Strictest first. */
static const struct {
    const char *channel;
    const char *key;
    scope_t scope;
    const char *fallback; /* NULL: no default limit */
} paces[] = {
    {"telegram", "telegram.group", SCOPE_GROUP, "20/min burst 1"},
    {"telegram", "telegram.chat", SCOPE_TARGET, "1/s burst 1"},
    {"telegram", "telegram", SCOPE_CHANNEL, "30/s"},
    {"email", "email.target", SCOPE_TARGET, NULL},
    {"email", "email", SCOPE_CHANNEL, "60/min burst 10"},
    /* Teams throttles a webhook past 4 requests a second. */
    {"teams", "teams.target", SCOPE_TARGET, "4/s burst 1"},
    /* Confluence Cloud's REST API limits by cost; a page update is a few
     * calls, and one a second per site stays far inside it. */
    {"confluence", "confluence", SCOPE_CHANNEL, "1/s burst 3"},
};

/* Groups, supergroups and channels have negative ids or an @username. */
static int is_group_chat(const char *target)
{
    return target != NULL && (target[0] == '-' || target[0] == '@');
}

static const char *configured(const ns_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_rate_limits; i++)
        if (strcmp(cfg->rate_limits[i].key, key) == 0)
            return cfg->rate_limits[i].value;
    return NULL;
}

size_t ns_pacing_buckets(const ns_config_t *cfg, const char *channel,
                         const char *target, ns_pace_t out[NS_PACE_MAX])
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(paces) / sizeof(paces[0]); i++) {
        if (strcmp(paces[i].channel, channel) != 0 || n == NS_PACE_MAX)
            continue;
        if (paces[i].scope == SCOPE_GROUP && !is_group_chat(target))
            continue;
        const char *spec = configured(cfg, paces[i].key);
        if (spec == NULL)
            spec = paces[i].fallback;
        if (spec == NULL || strcmp(spec, "off") == 0)
            continue;
        ns_pace_t *p = &out[n];
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_ratelimit_parse(spec, &p->rate, &p->burst, &err) != NS_OK)
            continue; /* validated at load */
        p->key = paces[i].key;
        if (paces[i].scope == SCOPE_CHANNEL)
            snprintf(p->bucket, sizeof(p->bucket), "%s", p->key);
        else
            snprintf(p->bucket, sizeof(p->bucket), "%s:%s", p->key,
                     target ? target : "");
        n++;
    }
    return n;
}

int64_t ns_pacing_take(ns_ratelimit_t *rl, const ns_config_t *cfg,
                       const char *channel, const char *target)
{
    ns_pace_t paces_now[NS_PACE_MAX];
    size_t n = ns_pacing_buckets(cfg, channel, target, paces_now);
    for (size_t i = 0; i < n; i++) {
        int64_t wait_ms = 0;
        ns_error_t err;
        ns_error_clear(&err);
        if (ns_ratelimit_take(rl, paces_now[i].bucket, paces_now[i].rate,
                              paces_now[i].burst, 1, &wait_ms, &err) != NS_OK) {
            NS_WARN(NULL, "pacing %s: %s", paces_now[i].bucket, err.msg);
            continue;
        }
        /* A later bucket saying "not yet" wastes the earlier ones' tokens
         * for this message; the strictest go first, so that is rare. */
        if (wait_ms > 0)
            return wait_ms;
    }
    return 0;
}
