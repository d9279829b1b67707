/* mailaddr.h: email address syntax ("addr" or "Name <addr>"), checked the
 * same way when jobs.yaml is loaded and when a message is sent.
 * Conservative on purpose: dot-atom local parts and host names only. */
#ifndef NS_MAILADDR_H
#define NS_MAILADDR_H

#include <stddef.h>

#include "ns/err.h"

#define NS_MAIL_MAX_NAME 200 /* bytes of a display name or file name */

typedef struct ns_mail_addr {
    char addr[256];                  /**< the addr-spec: local-part@host.name */
    char name[NS_MAIL_MAX_NAME + 1]; /**< display name, may be "" */
} ns_mail_addr_t;

/** @brief Parses "addr" or "Name <addr>"; NS_ERR_PERMANENT with the reason
 *  (control characters, unmatched '<' '>', not a dot-atom@host). */
ns_err_t ns_mail_parse_address(const char *in, ns_mail_addr_t *out,
                               ns_error_t *err);

/** @brief Checks an address the way ns_mail_send does.
 *  @returns NS_OK or NS_ERR_PERMANENT with the reason in err. */
ns_err_t ns_mail_check_address(const char *address, ns_error_t *err);

/** @brief s for an error message: control bytes as \xNN, at most 80
 *  characters. @returns out. */
const char *ns_mail_printable(const char *s, char *out, size_t outlen);

#endif
