/* llm.h: an OpenAI-compatible chat-completions client (Perplexity, OpenAI,
 * vLLM, ...). POST {base_url}/chat/completions with a bearer key. */
#ifndef NS_LLM_H
#define NS_LLM_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_llm_result {
    char *content; /**< choices[0].message.content, malloc'd */
    char *model;   /**< model the API says it used, malloc'd */
    int prompt_tokens;
    int completion_tokens;
    int total_tokens;
    long latency_ms;
} ns_llm_result_t;

/** @brief Sends one user message (and an optional system message).
 *  @returns NS_OK with out filled; NS_ERR_TRANSIENT for 408/429/5xx,
 *  timeouts and malformed or empty answers (err->retry_after_s from
 *  Retry-After); NS_ERR_PERMANENT for other 4xx. */
ns_err_t ns_llm_chat(const ns_llm_settings_t *cfg, const char *system_prompt,
                     const char *user_prompt, ns_llm_result_t *out,
                     ns_error_t *err);
/** A conversation: an optional system message, then turns alternating
 *  user, assistant, user, ... (the last one the user's); with json_schema
 *  the answer is asked as structured output (response_format json_schema,
 *  strict). */
typedef struct ns_llm_request {
    const char *system;
    const char *const *turns;
    size_t n_turns;
    const cJSON *json_schema; /**< NULL: free text */
    const char *schema_name;  /**< default "answer" */
} ns_llm_request_t;

/** @brief ns_llm_chat for a whole conversation (a repair request: the
 *  message, the bad answer, what was wrong with it). Errors likewise. */
ns_err_t ns_llm_chat_ex(const ns_llm_settings_t *cfg,
                        const ns_llm_request_t *rq, ns_llm_result_t *out,
                        ns_error_t *err);

void ns_llm_result_free(ns_llm_result_t *r);

#endif
