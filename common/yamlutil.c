#include "yamlutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"

/* One interpolated scalar may not grow past this (a runaway ${VAR}). */
#define YAML_SCALAR_MAX (1024 * 1024)
/* Deeper free-form nesting is an alias loop or a mistake. */
#define YAML_JSON_DEPTH 64
/* Integers beyond 2^53 would lose digits as JSON numbers: keep as text. */
#define YAML_JSON_INT_MAX (1LL << 53)

static const char *const yaml_nulls[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const yaml_trues[] = {"true", "True", "TRUE", NULL};
static const char *const yaml_falses[] = {"false", "False", "FALSE", NULL};

static bool one_of(const char *text, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(text, *words) == 0)
            return true;
    return false;
}

static bool skip_digits(const char **p)
{
    const char *s = *p;
    while (isdigit((unsigned char)*s))
        s++;
    bool any = s != *p;
    *p = s;
    return any;
}

static bool int_text(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    return skip_digits(&s) && *s == '\0';
}

/* YAML 1.2 core floats without .inf/.nan (JSON cannot hold them). */
static bool float_text(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    bool whole = skip_digits(&s), point = false, frac = false;
    if (*s == '.') {
        s++;
        point = true;
        frac = skip_digits(&s);
    }
    if (!whole && !frac)
        return false;
    bool exponent = false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!skip_digits(&s))
            return false;
        exponent = true;
    }
    return *s == '\0' && (point || exponent);
}

int ns_yaml_line(const yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

ns_err_t ns_yaml_fail(ns_yaml_t *y, const yaml_node_t *node, const char *fmt,
                      ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ns_error_set(y->err, NS_ERR_INVALID, "%s:%d: %s", y->path,
                        ns_yaml_line(node), msg);
}

yaml_node_t *ns_yaml_node(const ns_yaml_t *y, int id)
{
    return yaml_document_get_node(y->doc, id);
}

const char *ns_yaml_kind(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_NO_NODE: break;
    }
    return "nothing";
}

const char *ns_yaml_raw(const yaml_node_t *node)
{
    return (const char *)node->data.scalar.value;
}

bool ns_yaml_is_null(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE &&
           node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           one_of(ns_yaml_raw(node), yaml_nulls);
}

ns_err_t ns_yaml_check_map(ns_yaml_t *y, const yaml_node_t *node,
                           const char *what)
{
    if (node->type != YAML_MAPPING_NODE)
        return ns_yaml_fail(y, node, "%s: expected a mapping, got %s", what,
                            ns_yaml_kind(node));
    const yaml_node_pair_t *start = node->data.mapping.pairs.start;
    const yaml_node_pair_t *top = node->data.mapping.pairs.top;
    for (const yaml_node_pair_t *p = start; p < top; p++) {
        const yaml_node_t *key = ns_yaml_node(y, p->key);
        if (key->type != YAML_SCALAR_NODE)
            return ns_yaml_fail(y, key, "%s: keys must be scalars, got %s",
                                what, ns_yaml_kind(key));
        for (const yaml_node_pair_t *q = start; q < p; q++) {
            const yaml_node_t *prev = ns_yaml_node(y, q->key);
            if (strcmp(ns_yaml_raw(prev), ns_yaml_raw(key)) == 0)
                return ns_yaml_fail(y, key,
                                    "duplicate key \"%s\" (first at line %d)",
                                    ns_yaml_raw(key), ns_yaml_line(prev));
        }
    }
    return NS_OK;
}

yaml_node_t *ns_yaml_get(const ns_yaml_t *y, const yaml_node_t *map,
                         const char *key)
{
    if (map->type != YAML_MAPPING_NODE)
        return NULL;
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = ns_yaml_node(y, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(ns_yaml_raw(k), key) == 0)
            return ns_yaml_node(y, p->value);
    }
    return NULL;
}

static ns_err_t add_text(ns_buf_t *b, const char *text, size_t len,
                         ns_error_t *err)
{
    ns_err_t rc = ns_buf_add(b, text, len);
    if (rc == NS_ERR_NOMEM)
        return ns_error_set(err, rc, "out of memory");
    if (rc != NS_OK)
        return ns_error_set(err, rc, "value longer than %d bytes",
                            YAML_SCALAR_MAX);
    return NS_OK;
}

/* Expands the reference starting at ref ("${NAME}" or "${NAME:-default}")
 * and sets *end past its closing brace. */
static ns_err_t expand_ref(ns_buf_t *b, const char *ref, const char **end,
                           ns_error_t *err)
{
    static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "abcdefghijklmnopqrstuvwxyz"
                                     "0123456789_";
    const char *close = strchr(ref, '}');
    if (close == NULL)
        return ns_error_set(err, NS_ERR_INVALID,
                            "unterminated \"${\" in \"%s\"", ref);
    const char *name = ref + 2;
    size_t name_len = strspn(name, name_chars);
    const char *after = name + name_len;
    bool has_default = after[0] == ':' && after[1] == '-';
    char var[128];
    if (name_len == 0 || name_len >= sizeof(var) ||
        isdigit((unsigned char)name[0]) || (after != close && !has_default))
        return ns_error_set(err, NS_ERR_INVALID,
                            "bad variable reference \"%.*s\"",
                            (int)(close - ref + 1), ref);
    memcpy(var, name, name_len);
    var[name_len] = '\0';
    *end = close + 1;
    /* As in the shell, ":-" also replaces a variable that is set but empty.
     */
    const char *value = getenv(var);
    if (has_default && (value == NULL || *value == '\0'))
        return add_text(b, after + 2, (size_t)(close - after - 2), err);
    if (value == NULL)
        return ns_error_set(err, NS_ERR_INVALID,
                            "environment variable %s is not set", var);
    return add_text(b, value, strlen(value), err);
}

ns_err_t ns_yaml_interpolate(const char *text, char **out, ns_error_t *err)
{
    ns_buf_t b;
    ns_buf_init(&b, YAML_SCALAR_MAX);
    ns_err_t rc = NS_OK;
    const char *p = text;
    while (rc == NS_OK && *p != '\0') {
        const char *dollar = strchr(p, '$');
        if (dollar == NULL) {
            rc = add_text(&b, p, strlen(p), err);
            break;
        }
        rc = add_text(&b, p, (size_t)(dollar - p), err);
        if (rc != NS_OK)
            break;
        if (dollar[1] == '{') {
            rc = expand_ref(&b, dollar, &p, err);
        } else {
            /* "$$" is one literal '$'; a lone '$' stays as it is. */
            rc = add_text(&b, "$", 1, err);
            p = dollar + (dollar[1] == '$' ? 2 : 1);
        }
    }
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return rc;
    }
    *out = ns_buf_take(&b);
    if (*out == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    return NS_OK;
}

ns_err_t ns_yaml_string(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                        char **out)
{
    if (node->type != YAML_SCALAR_NODE)
        return ns_yaml_fail(y, node, "%s: expected a scalar, got %s", what,
                            ns_yaml_kind(node));
    ns_error_t why;
    ns_error_clear(&why);
    ns_err_t rc = ns_yaml_interpolate(ns_yaml_raw(node), out, &why);
    if (rc == NS_ERR_NOMEM)
        return ns_error_set(y->err, rc, "%s: out of memory", y->path);
    if (rc != NS_OK)
        return ns_yaml_fail(y, node, "%s", why.msg);
    return NS_OK;
}

ns_err_t ns_yaml_int(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                     long long min, long long max, long long *out)
{
    char *text;
    ns_err_t rc = ns_yaml_string(y, node, what, &text);
    if (rc != NS_OK)
        return rc;
    errno = 0;
    long long value = int_text(text) ? strtoll(text, NULL, 10) : 0;
    if (!int_text(text))
        rc = ns_yaml_fail(y, node, "%s: expected an integer, got \"%s\"", what,
                          text);
    else if (errno == ERANGE || value < min || value > max)
        rc = ns_yaml_fail(y, node, "%s: %s is out of range (%lld..%lld)", what,
                          text, min, max);
    else
        *out = value;
    free(text);
    return rc;
}

ns_err_t ns_yaml_double(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                        double min, double max, double *out)
{
    char *text;
    ns_err_t rc = ns_yaml_string(y, node, what, &text);
    if (rc != NS_OK)
        return rc;
    bool numeric = int_text(text) || float_text(text);
    double value = numeric ? strtod(text, NULL) : 0;
    if (!numeric)
        rc = ns_yaml_fail(y, node, "%s: expected a number, got \"%s\"", what,
                          text);
    else if (!isfinite(value) || value < min || value > max)
        rc = ns_yaml_fail(y, node, "%s: %s is out of range (%g..%g)", what,
                          text, min, max);
    else
        *out = value;
    free(text);
    return rc;
}

ns_err_t ns_yaml_bool(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                      bool *out)
{
    char *text;
    ns_err_t rc = ns_yaml_string(y, node, what, &text);
    if (rc != NS_OK)
        return rc;
    if (one_of(text, yaml_trues))
        *out = true;
    else if (one_of(text, yaml_falses))
        *out = false;
    else
        rc = ns_yaml_fail(y, node, "%s: expected true or false, got \"%s\"",
                          what, text);
    free(text);
    return rc;
}

static cJSON *json_plain(const char *text)
{
    if (one_of(text, yaml_nulls))
        return cJSON_CreateNull();
    if (one_of(text, yaml_trues))
        return cJSON_CreateTrue();
    if (one_of(text, yaml_falses))
        return cJSON_CreateFalse();
    if (int_text(text)) {
        errno = 0;
        long long value = strtoll(text, NULL, 10);
        if (errno == 0 && value >= -YAML_JSON_INT_MAX &&
            value <= YAML_JSON_INT_MAX)
            return cJSON_CreateNumber((double)value);
    } else if (float_text(text)) {
        double value = strtod(text, NULL);
        if (isfinite(value))
            return cJSON_CreateNumber(value);
    }
    return cJSON_CreateString(text);
}

static cJSON *json_node(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                        int depth);

static cJSON *json_scalar(ns_yaml_t *y, const yaml_node_t *node,
                          const char *what)
{
    char *text;
    if (ns_yaml_string(y, node, what, &text) != NS_OK)
        return NULL;
    cJSON *item = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
                      ? json_plain(text)
                      : cJSON_CreateString(text);
    free(text);
    return item;
}

static cJSON *json_array(ns_yaml_t *y, const yaml_node_t *node,
                         const char *what, int depth)
{
    cJSON *array = cJSON_CreateArray();
    for (const yaml_node_item_t *it = node->data.sequence.items.start;
         array != NULL && it < node->data.sequence.items.top; it++) {
        cJSON *item = json_node(y, ns_yaml_node(y, *it), what, depth + 1);
        if (item == NULL || !cJSON_AddItemToArray(array, item)) {
            cJSON_Delete(item);
            cJSON_Delete(array);
            return NULL;
        }
    }
    return array;
}

static cJSON *json_object(ns_yaml_t *y, const yaml_node_t *node,
                          const char *what, int depth)
{
    if (ns_yaml_check_map(y, node, what) != NS_OK)
        return NULL;
    cJSON *object = cJSON_CreateObject();
    for (const yaml_node_pair_t *p = node->data.mapping.pairs.start;
         object != NULL && p < node->data.mapping.pairs.top; p++) {
        const char *key = ns_yaml_raw(ns_yaml_node(y, p->key));
        cJSON *item = json_node(y, ns_yaml_node(y, p->value), key, depth + 1);
        if (item == NULL || !cJSON_AddItemToObject(object, key, item)) {
            cJSON_Delete(item);
            cJSON_Delete(object);
            return NULL;
        }
    }
    return object;
}

static cJSON *json_node(ns_yaml_t *y, const yaml_node_t *node, const char *what,
                        int depth)
{
    if (depth > YAML_JSON_DEPTH) {
        ns_yaml_fail(y, node, "%s: nested deeper than %d levels", what,
                     YAML_JSON_DEPTH);
        return NULL;
    }
    if (y->json_budget == 0) {
        ns_yaml_fail(y, node, "%s: too many values (alias expansion?)", what);
        return NULL;
    }
    y->json_budget--;
    cJSON *item = NULL;
    switch (node->type) {
    case YAML_SCALAR_NODE: item = json_scalar(y, node, what); break;
    case YAML_SEQUENCE_NODE: item = json_array(y, node, what, depth); break;
    case YAML_MAPPING_NODE: item = json_object(y, node, what, depth); break;
    case YAML_NO_NODE: item = cJSON_CreateNull(); break;
    }
    /* Failures above set the error, except cJSON's own allocations. */
    if (item == NULL && (y->err == NULL || y->err->code == NS_OK))
        ns_error_set(y->err, NS_ERR_NOMEM, "%s: out of memory", y->path);
    return item;
}

cJSON *ns_yaml_to_json(ns_yaml_t *y, const yaml_node_t *node, const char *what)
{
    return json_node(y, node, what, 0);
}

static ns_err_t read_file(const char *path, ns_buf_t *text, ns_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ns_error_set(err, NS_ERR_INVALID, "%s: %s", path,
                            strerror(errno));
    ns_err_t rc = NS_OK;
    char chunk[8192];
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0 && ns_buf_add(text, chunk, n) != NS_OK) {
            rc = ns_error_set(err, NS_ERR_INVALID, "%s: larger than %zu bytes",
                              path, text->max);
            break;
        }
        if (n < sizeof(chunk)) {
            if (ferror(f))
                rc = ns_error_set(err, NS_ERR_INVALID, "%s: %s", path,
                                  strerror(errno));
            break;
        }
    }
    fclose(f);
    return rc;
}

static ns_err_t syntax_error(const char *path, const yaml_parser_t *parser,
                             const ns_buf_t *text, ns_error_t *err)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return ns_error_set(err, NS_ERR_NOMEM, "%s: out of memory", path);
    size_t line = parser->problem_mark.line + 1;
    if (parser->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < text->len; i++)
            line += text->data[i] == '\n';
    }
    const char *problem = parser->problem ? parser->problem : "syntax error";
    if (parser->context == NULL)
        return ns_error_set(err, NS_ERR_INVALID, "%s:%zu: %s", path, line,
                            problem);
    return ns_error_set(err, NS_ERR_INVALID, "%s:%zu: %s (%s at line %zu)",
                        path, line, problem, parser->context,
                        parser->context_mark.line + 1);
}

static ns_err_t load_document(const char *path, const ns_buf_t *text,
                              yaml_document_t *doc, ns_error_t *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ns_error_set(err, NS_ERR_NOMEM, "%s: out of memory", path);
    yaml_parser_set_input_string(
        &parser, (const unsigned char *)(text->data ? text->data : ""),
        text->len);
    ns_err_t rc = NS_OK;
    if (!yaml_parser_load(&parser, doc)) {
        rc = syntax_error(path, &parser, text, err);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(path, &parser, text, err);
    } else {
        const yaml_node_t *root = yaml_document_get_root_node(&extra);
        if (root != NULL)
            rc = ns_error_set(err, NS_ERR_INVALID,
                              "%s:%zu: only one YAML document is allowed", path,
                              root->start_mark.line + 1);
        yaml_document_delete(&extra);
    }
    if (rc != NS_OK)
        yaml_document_delete(doc);
    yaml_parser_delete(&parser);
    return rc;
}

ns_err_t ns_yaml_load_file(const char *path, size_t max_bytes,
                           yaml_document_t *doc, ns_error_t *err)
{
    ns_buf_t text;
    ns_buf_init(&text, max_bytes);
    ns_err_t rc = read_file(path, &text, err);
    if (rc == NS_OK)
        rc = load_document(path, &text, doc, err);
    ns_buf_free(&text);
    return rc;
}
