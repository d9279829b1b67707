/* logs.h: the operator's log verbs: `nightshift logs parse [FILE|-]
 * [--json]` runs the template parser (text/logparse.c) offline, so anyone
 * can check its grouping on their own logs. main.c only parses. */
#ifndef NS_LOGS_H
#define NS_LOGS_H

#include <stdbool.h>
#include <stdio.h>

/** @brief Groups every line of path (NULL or "-": stdin) into templates
 *  and prints, in input order, "TEMPLATE_ID<TAB>TEMPLATE" per line (the
 *  id as 16 hex digits), or with json one object per line:
 *  {"line": N, "template_id": "...", "template": "..."}.
 *
 *  Templates generalise while the input is read, so the output comes at
 *  the end: each line's group id is remembered (8 bytes a line, the lines
 *  themselves are not kept) and printed with its group's final text.
 *  Lines the parser refuses (invalid UTF-8, over 64 KiB, the template
 *  limit) are reported on errout as "LINE: line N: cause" and skipped.
 *  @returns 0 all lines parsed, 1 some were skipped, 2 the file could not
 *  be read (or out of memory). */
int ns_ops_logs_parse(const char *path, bool json, FILE *out, FILE *errout);

#endif
