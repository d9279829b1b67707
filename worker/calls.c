/* calls.c: items whose attempt is one HTTP request, begun and ended in
 * batches around the worker's HTTP loop (calls.h). */
#include "calls.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bookkeeper.h"
#include "ctx.h"
#include "item.h"
#include "item_internal.h"
#include "ns/clock.h"
#include "ns/envelope.h"
#include "ns/kafka.h"
#include "ns/log.h"

struct ns_call {
    ns_http_xfer_t xfer;
    void *tag;
    size_t index; /* in the batch being begun */
    ns_msg_t msg; /* a copy; its strings are the task's or below */
    char origin[NS_TOPIC_MAX];
    char first[40];
    ns_envelope_t env;
    const ns_job_t *job;
    const ns_handler_def_t *h;
    ns_http_req_t req;
    void *state; /* the handler's, from request to response */
    int attempt;
    int64_t t0;
};

static ns_call_t *call_new(const ns_msg_t *msg, void *tag, size_t index)
{
    ns_call_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->tag = tag;
    c->index = index;
    c->msg = *msg;
    if (msg->origin_topic != NULL) {
        snprintf(c->origin, sizeof(c->origin), "%s", msg->origin_topic);
        c->msg.origin_topic = c->origin;
    }
    if (msg->first_failure != NULL) {
        snprintf(c->first, sizeof(c->first), "%s", msg->first_failure);
        c->msg.first_failure = c->first;
    }
    return c;
}

static void call_free(ns_call_t *c)
{
    if (c == NULL)
        return;
    ns_envelope_free(&c->env);
    free(c);
}

ns_call_t *ns_call_of(ns_http_xfer_t *x)
{
    return (ns_call_t *)((char *)x - offsetof(ns_call_t, xfer));
}

const ns_http_xfer_t *ns_call_xfer(const ns_call_t *call)
{
    return &call->xfer;
}

void *ns_call_tag(const ns_call_t *call)
{
    return call->tag;
}

/* Whether the item takes the path of this file: a decodable envelope of a
 * job whose handler is one HTTP request, not a dry run, with a bookkeeper
 * to batch its statements. */
static bool call_prepare(ns_item_res_t *res, ns_call_t *c)
{
    if (res->bk == NULL ||
        ns_envelope_decode(c->msg.value, c->msg.len, c->msg.compressed,
                           res->cfg->max_payload_bytes, &c->env, NULL) != NS_OK)
        return false;
    c->job = ns_config_job(res->cfg, c->env.job);
    c->h = c->job != NULL ? ns_handler_find(c->job->handler, 0) : NULL;
    return c->h != NULL && c->h->http_request != NULL &&
           c->h->http_response != NULL && !c->env.dry_run;
}

/* A failed attempt (recorded) of c: the one-item path's answer. */
static ns_item_outcome_t call_failed(ns_item_res_t *res, ns_call_t *c,
                                     ns_err_t rc, const ns_error_t *err)
{
    ns_item_outcome_t out = item_after_attempt(
        res, &c->msg, &c->env, c->job, c->h, c->attempt, rc, err, c->t0);
    if (out == NS_ITEM_COMMITTED)
        item_finalize_check(res, c->env.run_id, true);
    return out;
}

/* The started call's request, or its failure. true: c is in flight. */
static bool call_request(ns_item_res_t *res, ns_call_t *c,
                         ns_item_outcome_t *out)
{
    ns_item_ctx_t ctx;
    item_init_ctx(&ctx, res, c->job, &c->env);
    ctx.attempt = c->attempt;
    ns_error_t err;
    ns_error_clear(&err);
    ns_err_t rc = c->h->http_request(&ctx, &c->req, &c->state, &err);
    if (ctx.in_tx) /* the request half writes nothing */
        ns_ctx_end_tx(&ctx, false, NULL);
    cJSON_Delete(ctx.report);
    ns_item_pg_release(res);
    if (rc == NS_OK) {
        c->xfer.req = &c->req;
        return true;
    }
    *out = call_failed(res, c, rc, &err);
    return false;
}

void ns_calls_begin(ns_item_res_t *res, ns_http_async_t *http, int group,
                    const ns_msg_t *msgs, void *const *tags, size_t n,
                    ns_call_t **calls, ns_item_outcome_t *outcomes)
{
    ns_call_t **mine = calloc(n, sizeof(*mine));
    ns_bk_item_t *bk = calloc(n, sizeof(*bk));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        calls[i] = NULL;
        outcomes[i] = NS_ITEM_COMMITTED;
        ns_call_t *c =
            mine != NULL && bk != NULL ? call_new(&msgs[i], tags[i], i) : NULL;
        if (c != NULL && call_prepare(res, c)) {
            bk[m] = (ns_bk_item_t){.run_id = c->env.run_id,
                                   .item_key = c->env.item_key};
            mine[m++] = c;
            continue;
        }
        call_free(c);
        outcomes[i] = ns_item_process(res, &msgs[i]);
    }
    /* Every start in one bookkeeper round. */
    if (m > 0)
        ns_bookkeeper_start_n(res->bk, bk, m);
    ns_http_xfer_t *list = NULL;
    int64_t now = ns_clock_mono_ms();
    for (size_t k = m; k-- > 0;) {
        ns_call_t *c = mine[k];
        size_t i = c->index;
        c->t0 = now;
        if (bk[k].result == NS_BK_OK) {
            c->attempt = bk[k].attempt;
            if (call_request(res, c, &outcomes[i])) {
                c->xfer.group = group;
                calls[i] = c;
                c->xfer.next = list;
                list = &c->xfer;
                continue;
            }
        } else if (bk[k].result == NS_BK_STOPPING) {
            outcomes[i] = NS_ITEM_ABANDONED;
        } else if (bk[k].result == NS_BK_TERMINAL) {
            /* Finished before: a redelivery, nothing to do. */
            item_count(c->job->name, "duplicate", -1);
        } else {
            /* Unknown, cancelled, or the statement failed: the one-item
             * path checks again and says so. */
            outcomes[i] = ns_item_process(res, &msgs[i]);
        }
        call_free(c);
    }
    free(mine);
    free(bk);
    ns_http_async_submit(http, list);
}

/* The response half of c's attempt, on ctx. */
static ns_err_t call_response(ns_call_t *c, ns_item_ctx_t *ctx, ns_error_t *err)
{
    *err = c->xfer.err;
    ns_err_t rc =
        c->h->http_response(ctx, c->state, c->xfer.rc, &c->xfer.resp, err);
    c->state = NULL;
    ns_http_resp_free(&c->xfer.resp);
    return rc;
}

void ns_calls_end(ns_item_res_t *res, ns_call_t **calls, size_t n,
                  ns_item_outcome_t *outcomes)
{
    ns_bk_item_t *bk = calloc(n, sizeof(*bk));
    size_t *which = calloc(n, sizeof(*which));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        ns_call_t *c = calls[i];
        ns_item_ctx_t ctx;
        item_init_ctx(&ctx, res, c->job, &c->env);
        ctx.attempt = c->attempt;
        ns_error_t err;
        ns_err_t rc = call_response(c, &ctx, &err);
        if (rc == NS_OK && !ctx.in_tx && bk != NULL && which != NULL) {
            /* The plain case: recorded with the others below. */
            bk[m] = (ns_bk_item_t){.run_id = c->env.run_id,
                                   .item_key = c->env.item_key,
                                   .report = ns_ctx_report_text(&ctx)};
            which[m++] = i;
        } else {
            if (rc == NS_OK)
                rc = item_commit_done(&ctx, &err);
            else
                ns_ctx_end_tx(&ctx, false, NULL);
            outcomes[i] =
                rc == NS_OK ? NS_ITEM_COMMITTED : call_failed(res, c, rc, &err);
            if (rc == NS_OK) {
                item_count(c->job->name, "done",
                           (double)(ns_clock_mono_ms() - c->t0) / 1000.0);
                item_finalize_check(res, c->env.run_id, true);
            }
        }
        cJSON_Delete(ctx.report);
        ns_item_pg_release(res);
    }
    if (m > 0)
        ns_bookkeeper_done_n(res->bk, bk, m);
    int64_t now = ns_clock_mono_ms();
    for (size_t k = 0; k < m; k++) {
        ns_call_t *c = calls[which[k]];
        ns_item_outcome_t *out = &outcomes[which[k]];
        free((char *)bk[k].report);
        if (bk[k].result == NS_BK_OK) {
            *out = NS_ITEM_COMMITTED;
            item_count(c->job->name, "done", (double)(now - c->t0) / 1000.0);
            if (bk[k].maybe_complete)
                item_finalize_check(res, c->env.run_id, false);
            continue;
        }
        if (bk[k].result == NS_BK_STOPPING) {
            /* Redelivered and called again (the same idempotency key). */
            *out = NS_ITEM_ABANDONED;
            continue;
        }
        /* The batched statement failed: on this thread's connection. */
        ns_item_ctx_t ctx;
        item_init_ctx(&ctx, res, c->job, &c->env);
        ctx.attempt = c->attempt;
        ns_error_t err;
        ns_error_clear(&err);
        ns_err_t rc = item_commit_done(&ctx, &err);
        *out = rc == NS_OK ? NS_ITEM_COMMITTED : call_failed(res, c, rc, &err);
        if (rc == NS_OK)
            item_finalize_check(res, c->env.run_id, true);
        ns_item_pg_release(res);
    }
    for (size_t i = 0; i < n; i++)
        call_free(calls[i]);
    free(bk);
    free(which);
}
