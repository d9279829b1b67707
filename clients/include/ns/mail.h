/* mail.h: sending one email through SMTP (libcurl, curl's MIME API).
 * A plain-text UTF-8 body plus attachments; every header value is checked
 * or encoded so that caller data can never add a header (no injection). */
#ifndef NS_MAIL_H
#define NS_MAIL_H

#include <stddef.h>

#include "ns/err.h"
#include "ns/mailaddr.h"

typedef struct ns_mail_attachment {
    const char *filename;  /**< UTF-8; sanitized, RFC 2231 if non-ASCII */
    const char *mime_type; /**< bare type/subtype; NULL: octet-stream */
    const char *data;      /**< any bytes, NUL included */
    size_t len;
} ns_mail_attachment_t;

typedef struct ns_mail {
    const char *from;      /**< "addr" or "Display Name <addr>" */
    const char *const *to; /**< NULL-terminated, same syntax as from */
    const char *subject;   /**< UTF-8; controls removed, RFC 2047 encoded */
    const char *text;      /**< plain-text body, UTF-8 */
    const ns_mail_attachment_t *attachments;
    size_t n_attachments;
} ns_mail_t;

typedef enum ns_mail_tls {
    NS_MAIL_TLS_NONE = 0,     /**< plain SMTP: loopback hosts only */
    NS_MAIL_TLS_TRY = 1,      /**< STARTTLS when the server offers it */
    NS_MAIL_TLS_REQUIRED = 2, /**< STARTTLS or fail */
} ns_mail_tls_t;

typedef struct ns_mail_server {
    const char *url;      /**< smtp://host:port or smtps://host:port */
    const char *user;     /**< NULL: no AUTH */
    const char *password; /**< never logged nor put in error messages */
    int starttls;         /**< ns_mail_tls_t; ignored for smtps:// */
    long timeout_ms;      /**< whole transaction; <= 0: 60000 */
} ns_mail_server_t;

/** @brief Sends m through srv, one SMTP transaction for all recipients.
 *  TLS peer and host verification are always on; NS_SMTP_CA_FILE, when set
 *  in the environment, names the CA bundle to trust instead of the
 *  system's.
 *  @returns NS_OK when the server accepted the message for every recipient;
 *  NS_ERR_INVALID for a bad server setting (URL, plain SMTP to a remote
 *  host); NS_ERR_PERMANENT for a message that can never be sent (an
 *  address that is not a plain addr-spec or holds CR/LF, a 5xx reply such
 *  as a rejected recipient or a refused login, a TLS certificate that does
 *  not verify); NS_ERR_TRANSIENT for refused connections, timeouts, 4xx
 *  replies and lost links. err->http_status holds the last SMTP reply code.
 *  @remark Not atomic per recipient: a 5xx for one recipient fails the whole
 *  message and nobody gets it (curl's default), so a retry never
 *  duplicates. */
ns_err_t ns_mail_send(const ns_mail_server_t *srv, const ns_mail_t *m,
                      ns_error_t *err);

/** @brief The Subject header value for subject: control characters
 *  removed (CR, LF, TAB become a space), invalid UTF-8 repaired, and, when
 *  it is not plain short ASCII, RFC 2047 "=?UTF-8?B?...?=" words of at most
 *  75 characters folded onto continuation lines. @returns malloc'd string,
 *  NULL when out of memory. */
char *ns_mail_encode_subject(const char *subject);

#endif
