#include "ns/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *ns_err2str(ns_err_t code)
{
    switch (code) {
    case NS_OK: return "ok";
    case NS_ERR_TRANSIENT: return "transient";
    case NS_ERR_PERMANENT: return "permanent";
    case NS_ERR_INVALID: return "invalid";
    case NS_ERR_NOMEM: return "out of memory";
    case NS_ERR_IO: return "i/o";
    case NS_ERR_NOT_FOUND: return "not found";
    case NS_ERR_DEFERRED: return "deferred";
    }
    return "unknown";
}

void ns_error_clear(ns_error_t *e)
{
    if (e == NULL)
        return;
    e->code = NS_OK;
    e->http_status = 0;
    e->retry_after_s = -1;
    e->msg[0] = '\0';
}

ns_err_t ns_error_set(ns_error_t *e, ns_err_t code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}
