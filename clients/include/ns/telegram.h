/* telegram.h: the Telegram Bot API (sendMessage) and message formatting.
 * Messages use parse_mode HTML: user text is escaped so that it arrives
 * literally, and long messages are split at 4096 UTF-16 code units of
 * visible text (Telegram's own count). */
#ifndef NS_TELEGRAM_H
#define NS_TELEGRAM_H

#include <stddef.h>

#include "ns/config.h"
#include "ns/err.h"

#define NS_TG_MAX_TEXT 4096

/** @brief Escapes &, <, > for parse_mode HTML; invalid UTF-8 becomes
 *  U+FFFD and control characters other than \n and \t are dropped.
 *  @returns malloc'd string. */
char *ns_tg_escape_html(const char *text);

/** @brief Splits an HTML message into chunks of at most limit UTF-16 code
 *  units of visible text (tags count 0; a code point, or the entity that
 *  stands for it, counts 1, or 2 above U+FFFF, e.g. an emoji), preferring
 *  newline boundaries, never inside a tag or entity; tags
 *  open at a split are closed at the end of the chunk and reopened in the
 *  next. @returns the number of chunks; *chunks is a malloc'd array of
 *  malloc'd strings (free with ns_tg_chunks_free). */
size_t ns_tg_split_html(const char *html, size_t limit, char ***chunks);
void ns_tg_chunks_free(char **chunks, size_t n);

/** @brief The visible width of an HTML message in UTF-16 code units, as
 *  ns_tg_split_html counts it (what Telegram's 4096 limit is about). */
size_t ns_tg_html_width(const char *html);

/** Between the reports of a digest: a blank line. */
#define NS_TG_DIGEST_SEP "\n\n"

/** @brief How many of the leading reports (visible widths widths[0..n))
 *  fit into one message of at most limit units, separators included: at
 *  least 1 when n > 0 (a report wider than limit goes alone; it was split
 *  when queued). */
size_t ns_tg_digest_fit(const size_t *widths, size_t n, size_t limit);

/** @brief html[0..n) joined by NS_TG_DIGEST_SEP. Each must be a whole
 *  message (tags closed), so the digest is valid HTML too.
 *  @returns malloc'd, NULL when out of memory. */
char *ns_tg_digest_join(const char *const *html, size_t n);

/** @brief Calls sendMessage (parse_mode HTML, link previews off).
 *  @returns NS_OK; NS_ERR_TRANSIENT on 429 (err->retry_after_s from
 *  parameters.retry_after), 5xx, timeouts, malformed answers;
 *  NS_ERR_PERMANENT on other 4xx ("ok":false with description). */
ns_err_t ns_tg_send_message(const ns_telegram_settings_t *cfg,
                            const char *chat_id, const char *html,
                            ns_error_t *err);

/** @brief Calls sendDocument (multipart/form-data): uploads data[0..len) as
 *  a file named filename, with an optional caption (parse_mode HTML; the
 *  Bot API allows 1024 visible characters). Errors as ns_tg_send_message. */
ns_err_t ns_tg_send_document(const ns_telegram_settings_t *cfg,
                             const char *chat_id, const char *filename,
                             const void *data, size_t len,
                             const char *caption_html, ns_error_t *err);

/** @brief Fetches a file: getFile(file_id), then the bytes from
 *  <api_url>/file/bot<token>/<file_path> (at most max_bytes; the Bot API
 *  serves up to 20 MB). *data is malloc'd. Errors as ns_tg_send_message;
 *  a file over max_bytes is NS_ERR_PERMANENT. */
ns_err_t ns_tg_get_file(const ns_telegram_settings_t *cfg, const char *file_id,
                        size_t max_bytes, char **data, size_t *len,
                        ns_error_t *err);

#endif
