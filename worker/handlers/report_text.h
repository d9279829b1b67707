/* report_text.h: the text of report cells (private to the report book):
 * cleaned of what a spreadsheet must not hold, escaped for OOXML strings,
 * and measured as Excel counts column widths. */
#ifndef NS_REPORT_TEXT_H
#define NS_REPORT_TEXT_H

#include <stddef.h>

/** @brief A malloc'd, cleaned copy of s (NULL is ""): invalid UTF-8 becomes
 *  U+FFFD; C0 controls (but tab and newline in multi-line text), DEL, C1
 *  controls and U+FFFE/U+FFFF are removed; at most max_lines non-blank
 *  lines of at most max_chars characters in all, "…" marking a cut.
 *  Single-line text (max_lines 1) turns tabs and line breaks into a space.
 *  @returns NULL when out of memory. */
char *ns_report_text_clean(const char *s, size_t max_chars, size_t max_lines);

/** @brief A malloc'd copy in which "_xHHHH_" (which Excel would read as the
 *  character U+HHHH) stays literal. @returns NULL when out of memory. */
char *ns_report_text_escape(const char *s);

/** @brief The display width of the widest line of s, as Excel counts
 *  characters (East Asian wide characters and emoji take two); *rows gets
 *  the lines s takes in a column wrap characters wide. */
size_t ns_report_text_measure(const char *s, size_t wrap, size_t *rows);

#endif
