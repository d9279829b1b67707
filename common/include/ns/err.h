/* err.h: the one error type of nightshift.
 * Functions return ns_err_t and fill an ns_error_t with the cause, so the
 * caller decides: retry (transient), dead-letter (permanent) or report. */
#ifndef NS_ERR_H
#define NS_ERR_H

#include <stddef.h>

typedef enum ns_err {
    NS_OK = 0,
    NS_ERR_TRANSIENT, /**< worth retrying: timeouts, 5xx, 429, lost links */
    NS_ERR_PERMANENT, /**< retrying cannot help: 4xx, bad input */
    NS_ERR_INVALID,   /**< invalid argument or configuration */
    NS_ERR_NOMEM,
    NS_ERR_IO,
    NS_ERR_NOT_FOUND,
    NS_ERR_DEFERRED, /**< not an attempt: try again after retry_after_s
                        (a shared rate limit said "not yet") */
} ns_err_t;

/** The cause of a failure. retry_after_s < 0 means "no hint". */
typedef struct ns_error {
    ns_err_t code;
    long http_status;
    double retry_after_s;
    char msg[512];
} ns_error_t;

/** @brief Name of an error code ("transient", "permanent", ...). */
const char *ns_err2str(ns_err_t code);

/** @brief Resets e to "no error" (code NS_OK, no hint). NULL is a no-op. */
void ns_error_clear(ns_error_t *e);

/** @brief Sets code and a formatted message; returns code. NULL e is ok. */
ns_err_t ns_error_set(ns_error_t *e, ns_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
