/* logs.c: `nightshift logs parse`: the template parser over a file, two
 * steps: group every line (remembering its group), then print each line's
 * group with the group's final text. */
#include "logs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ns/logparse.h"

#define MAX_LINE 65536

/* One line into buf (cap bytes, NUL bytes included): its length, with
 * *too_long set (and the rest of the line skipped) when it does not fit;
 * -1 at the end of the input. */
static long read_line(FILE *in, char *buf, size_t cap, int *too_long)
{
    size_t len = 0;
    int c = EOF;
    *too_long = 0;
    while (len < cap && (c = getc(in)) != EOF) {
        buf[len++] = (char)c;
        if (c == '\n')
            return (long)len;
    }
    if (len == cap) {
        *too_long = 1;
        while ((c = getc(in)) != EOF && c != '\n')
            ;
    }
    return len == 0 && c == EOF ? -1 : (long)len;
}

static int print_json(FILE *out, size_t line_no, uint64_t id, const char *text)
{
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, id);
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddNumberToObject(o, "line", (double)line_no) ||
        !cJSON_AddStringToObject(o, "template_id", hex) ||
        !cJSON_AddStringToObject(o, "template", text)) {
        cJSON_Delete(o);
        return -1;
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s == NULL)
        return -1;
    fprintf(out, "%s\n", s);
    free(s);
    return 0;
}

/* Step one: every line's group id in *ids (0: skipped). */
static int group_lines(FILE *in, const char *name, ns_logparse_t *p,
                       uint64_t **ids, size_t *nlines, size_t *skipped,
                       FILE *errout)
{
    char *buf = malloc(MAX_LINE + 2);
    size_t cap = 0;
    if (buf == NULL)
        return -1;
    long len;
    int too_long;
    while ((len = read_line(in, buf, MAX_LINE + 2, &too_long)) >= 0) {
        if (*nlines == cap) {
            cap = cap ? cap * 2 : 4096;
            uint64_t *grown = realloc(*ids, cap * sizeof(**ids));
            if (grown == NULL) {
                free(buf);
                return -1;
            }
            *ids = grown;
        }
        uint64_t *id = &(*ids)[(*nlines)++];
        ns_error_t err;
        ns_error_clear(&err);
        if (too_long) {
            fprintf(errout, "%s: line %zu: longer than %d bytes, skipped\n",
                    name, *nlines, MAX_LINE);
            *id = 0;
            (*skipped)++;
        } else if (ns_logparse_add(p, buf, (size_t)len, id, &err) != NS_OK) {
            fprintf(errout, "%s: line %zu: %s, skipped\n", name, *nlines,
                    err.msg);
            *id = 0;
            (*skipped)++;
        }
    }
    free(buf);
    return ferror(in) ? -1 : 0;
}

int ns_ops_logs_parse(const char *path, bool json, FILE *out, FILE *errout)
{
    int use_stdin = path == NULL || strcmp(path, "-") == 0;
    const char *name = use_stdin ? "stdin" : path;
    FILE *in = use_stdin ? stdin : fopen(path, "r");
    if (in == NULL) {
        fprintf(errout, "%s: %s\n", name, strerror(errno));
        return 2;
    }
    char perr[256];
    ns_logparse_opts_t opts = {.max_line_len = MAX_LINE};
    ns_logparse_t *p = ns_logparse_new(&opts, perr, sizeof(perr));
    if (p == NULL) {
        fprintf(errout, "%s\n", perr);
        if (!use_stdin)
            fclose(in);
        return 2;
    }
    uint64_t *ids = NULL;
    size_t nlines = 0, skipped = 0;
    int rc = group_lines(in, name, p, &ids, &nlines, &skipped, errout);
    if (rc != 0)
        fprintf(errout, "%s: %s\n", name,
                ferror(in) ? strerror(errno) : "out of memory");
    if (!use_stdin)
        fclose(in);
    for (size_t i = 0; rc == 0 && i < nlines; i++) {
        if (ids[i] == 0)
            continue;
        const char *text = ns_logparse_template(p, ids[i]);
        if (!json)
            fprintf(out, "%016" PRIx64 "\t%s\n", ids[i], text);
        else if (print_json(out, i + 1, ids[i], text) != 0)
            rc = -1;
    }
    free(ids);
    ns_logparse_destroy(p);
    if (rc != 0)
        return 2;
    return skipped ? 1 : 0;
}
