/* stream.h: items of stream jobs (source type "stream"), see stream.c. */
#ifndef NS_STREAM_H
#define NS_STREAM_H

#include "ctx.h"

/** @brief The stream job whose items arrive on topic, or NULL. */
const ns_job_t *ns_stream_job(const ns_config_t *cfg, const char *topic);

/** @brief Processes one message of job's stream topic: parse (bad input
 *  is dead-lettered with its reason), run the handler with retries,
 *  commit. */
ns_item_outcome_t ns_stream_process(ns_item_res_t *res, const ns_msg_t *msg,
                                    const ns_job_t *job);

/** @brief The attempts of one parsed stream item. */
ns_item_outcome_t ns_stream_run(ns_item_res_t *res, const ns_msg_t *msg,
                                const ns_envelope_t *env, const ns_job_t *job,
                                const ns_handler_def_t *h);

#endif
