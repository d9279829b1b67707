/* mailfmt.h: private to clients/: the text of an email behind mail.c:
 * address checks, RFC 2047 header words, RFC 2231 file names, CRLF bodies.
 * Nothing here talks to a server, so all of it can be tested offline. */
#ifndef NS_MAILFMT_H
#define NS_MAILFMT_H

#include <stddef.h>

#include "ns/buf.h"
#include "ns/err.h"
#include "ns/mailaddr.h"

#define NS_MAILFMT_MAX_HEADER ((size_t)64 << 10)
#define NS_MAILFMT_FOLD "\r\n " /* between the lines of a folded header */

/** @brief Appends "addr", "\"Name\" <addr>" or "=?UTF-8?B?..?= <addr>". */
ns_err_t ns_mailfmt_add_mailbox(ns_buf_t *b, const ns_mail_addr_t *a);

/** @brief Appends "Date: <RFC 5322 date of now, UTC>". */
ns_err_t ns_mailfmt_add_date(ns_buf_t *b);

/** @brief Appends "Message-ID: <random@domain of from>". */
ns_err_t ns_mailfmt_add_message_id(ns_buf_t *b, const ns_mail_addr_t *from);

/** @brief text as valid UTF-8 with CRLF line ends. @returns malloc'd,
 *  length in *len; NULL when out of memory. */
char *ns_mailfmt_body_crlf(const char *text, size_t *len);

/** @brief The Content-Type and Content-Disposition header lines of an
 *  attachment: mime_type (NULL: application/octet-stream) must be a bare
 *  type/subtype; the file name loses its directories and control
 *  characters, and is sent as RFC 2231 filename*= when not ASCII, with a
 *  plain ASCII name="..." in Content-Type for older readers.
 *  @returns NS_OK with two malloc'd strings, NS_ERR_PERMANENT for a bad
 *  type, NS_ERR_NOMEM. */
ns_err_t ns_mailfmt_attachment_headers(const char *filename,
                                       const char *mime_type,
                                       char **content_type, char **disposition,
                                       ns_error_t *err);

#endif
