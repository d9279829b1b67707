#include "ns/jsonschema.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema_format.h"

enum {
    T_OBJECT = 1 << 0,
    T_ARRAY = 1 << 1,
    T_STRING = 1 << 2,
    T_INTEGER = 1 << 3,
    T_NUMBER = 1 << 4,
    T_BOOLEAN = 1 << 5,
    T_NULL = 1 << 6,
};
static const char *const type_names[] = {
    "object", "array", "string", "integer", "number", "boolean", "null",
};
#define TYPE_COUNT (sizeof(type_names) / sizeof(type_names[0]))

typedef enum { FMT_NONE, FMT_DATE_TIME, FMT_DATE } format_t;

typedef struct bound {
    bool set;
    double value;
} bound_t;

typedef struct node node_t;
struct node {
    bool reject_all; /* the boolean schema false */
    unsigned types;  /* T_* bits; 0: any type */
    /* enum, const, required and properties point into the owned copy. */
    const cJSON *enum_values;
    const cJSON *const_value;
    long min_length, max_length; /* in code points; -1: absent */
    format_t format;
    bound_t minimum, maximum, xminimum, xmaximum;
    long min_items, max_items; /* -1: absent */
    node_t *items;
    const cJSON *required;
    const cJSON *properties;
    node_t **property_nodes; /* one per child of properties, in order */
    node_t *additional;      /* NULL: any additional property is allowed */
    node_t **any_of;
    size_t any_of_count;
};

struct ns_jsonschema {
    cJSON *doc;
    node_t *root;
};

/* ---- JSON Pointers ---- */

#define PATH_CAP 400

typedef struct path {
    char buf[PATH_CAP];
    size_t len;
} path_t;

/* A pointer too long for the buffer is cut short (messages are anyway). */
static void path_putc(path_t *p, char ch)
{
    if (p->len + 1 < PATH_CAP) {
        p->buf[p->len++] = ch;
        p->buf[p->len] = '\0';
    }
}

/* Appends "/" + segment with ~ and / escaped; returns the length to pop to. */
static size_t path_push(path_t *p, const char *segment)
{
    size_t saved = p->len;
    path_putc(p, '/');
    for (const char *s = segment; *s != '\0'; s++) {
        if (*s == '~' || *s == '/') {
            path_putc(p, '~');
            path_putc(p, *s == '~' ? '0' : '1');
        } else {
            path_putc(p, *s);
        }
    }
    return saved;
}

static size_t path_push_index(path_t *p, int index)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%d", index);
    return path_push(p, digits);
}

static void path_pop(path_t *p, size_t len)
{
    p->len = len;
    p->buf[len] = '\0';
}

static const char *path_str(const path_t *p)
{
    return p->len == 0 ? "(root)" : p->buf;
}

/* ---- compiling ---- */

typedef struct compiler {
    path_t path;
    int depth; /* of the subschema being compiled */
    ns_error_t *err;
} compiler_t;

__attribute__((format(printf, 2, 3))) static bool
bad_schema(compiler_t *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ns_error_set(c->err, NS_ERR_INVALID, "schema at %s: %s", path_str(&c->path),
                 msg);
    return false;
}

static void node_free(node_t *n)
{
    if (n == NULL)
        return;
    int count = n->properties ? cJSON_GetArraySize(n->properties) : 0;
    for (int i = 0; n->property_nodes != NULL && i < count; i++)
        node_free(n->property_nodes[i]);
    free(n->property_nodes);
    for (size_t i = 0; i < n->any_of_count; i++)
        node_free(n->any_of[i]);
    free(n->any_of);
    node_free(n->items);
    node_free(n->additional);
    free(n);
}

static node_t *compile_node(compiler_t *c, const cJSON *schema);

/* Whether a sibling before item, from first on, has the same key (or,
 * by_value, the same string). cJSON keeps both copies of a repeated key. */
static bool repeated(const cJSON *first, const cJSON *item, bool by_value)
{
    for (const cJSON *q = first; q != item; q = q->next)
        if (strcmp(by_value ? q->valuestring : q->string,
                   by_value ? item->valuestring : item->string) == 0)
            return true;
    return false;
}

/* Keywords whose value is stored as is, at an offset into node_t. */
static bool kw_count(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15 ||
        floor(v->valuedouble) != v->valuedouble)
        return bad_schema(c, "must be a non-negative integer");
    *(long *)((char *)n + off) = (long)v->valuedouble;
    return true;
}

static bool kw_bound(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad_schema(c, "must be a number");
    *(bound_t *)((char *)n + off) = (bound_t){true, v->valuedouble};
    return true;
}

static unsigned type_bit(const cJSON *v)
{
    for (size_t i = 0; cJSON_IsString(v) && i < TYPE_COUNT; i++)
        if (strcmp(v->valuestring, type_names[i]) == 0)
            return 1u << i;
    return 0;
}

static bool kw_type(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (cJSON_IsString(v)) {
        n->types = type_bit(v);
        return n->types ? true
                        : bad_schema(c, "unknown type \"%s\"", v->valuestring);
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return bad_schema(c, "must be a type name or a non-empty array of "
                             "them");
    const cJSON *t;
    cJSON_ArrayForEach(t, v)
    {
        unsigned bit = type_bit(t);
        if (bit == 0 || (n->types & bit) != 0)
            return bad_schema(c, "unknown or repeated type in the array");
        n->types |= bit;
    }
    return true;
}

static bool kw_properties(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (!cJSON_IsObject(v))
        return bad_schema(c, "must be an object");
    int count = cJSON_GetArraySize(v);
    n->property_nodes = calloc((size_t)count + 1, sizeof(node_t *));
    if (n->property_nodes == NULL)
        return ns_error_set(c->err, NS_ERR_NOMEM, "out of memory"), false;
    n->properties = v;
    int i = 0;
    for (const cJSON *p = v->child; p != NULL; p = p->next, i++) {
        size_t saved = path_push(&c->path, p->string);
        if (repeated(v->child, p, false))
            return bad_schema(c, "property defined twice");
        n->property_nodes[i] = compile_node(c, p);
        if (n->property_nodes[i] == NULL)
            return false;
        path_pop(&c->path, saved);
    }
    return true;
}

static bool kw_required(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (!cJSON_IsArray(v))
        return bad_schema(c, "must be an array of property names");
    for (const cJSON *r = v->child; r != NULL; r = r->next) {
        if (!cJSON_IsString(r))
            return bad_schema(c, "must be an array of property names");
        if (repeated(v->child, r, true))
            return bad_schema(c, "\"%s\" is listed twice", r->valuestring);
    }
    n->required = v;
    return true;
}

static bool kw_additional(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    n->additional = compile_node(c, v);
    return n->additional != NULL;
}

static bool kw_enum(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return bad_schema(c, "must be a non-empty array");
    n->enum_values = v;
    return true;
}

static bool kw_const(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    n->const_value = v;
    return true;
}

static bool kw_items(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (cJSON_IsArray(v))
        return bad_schema(c, "must be one schema (the array form is "
                             "prefixItems, which is not supported)");
    n->items = compile_node(c, v);
    return n->items != NULL;
}

static bool kw_format(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    if (cJSON_IsString(v) && strcmp(v->valuestring, "date-time") == 0)
        n->format = FMT_DATE_TIME;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "date") == 0)
        n->format = FMT_DATE;
    else
        return bad_schema(c, "unsupported format (only \"date-time\" and "
                             "\"date\" are enforced)");
    return true;
}

static bool kw_any_of(compiler_t *c, node_t *n, const cJSON *v, size_t off)
{
    int count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
    if (count == 0)
        return bad_schema(c, "must be a non-empty array of schemas");
    n->any_of = calloc((size_t)count, sizeof(node_t *));
    if (n->any_of == NULL)
        return ns_error_set(c->err, NS_ERR_NOMEM, "out of memory"), false;
    for (int i = 0; i < count; i++) {
        size_t saved = path_push_index(&c->path, i);
        n->any_of[i] = compile_node(c, cJSON_GetArrayItem(v, i));
        if (n->any_of[i] == NULL)
            return false;
        n->any_of_count++;
        path_pop(&c->path, saved);
    }
    return true;
}

typedef bool (*keyword_fn)(compiler_t *, node_t *, const cJSON *, size_t off);

/* Every keyword a schema may hold; compile is NULL for annotations. */
static const struct keyword {
    const char *name;
    keyword_fn compile;
    size_t off; /* of the field kw_count or kw_bound sets */
} keywords[] = {
    {"type", kw_type, 0},
    {"properties", kw_properties, 0},
    {"required", kw_required, 0},
    {"additionalProperties", kw_additional, 0},
    {"enum", kw_enum, 0},
    {"const", kw_const, 0},
    {"minLength", kw_count, offsetof(node_t, min_length)},
    {"maxLength", kw_count, offsetof(node_t, max_length)},
    {"minimum", kw_bound, offsetof(node_t, minimum)},
    {"maximum", kw_bound, offsetof(node_t, maximum)},
    {"exclusiveMinimum", kw_bound, offsetof(node_t, xminimum)},
    {"exclusiveMaximum", kw_bound, offsetof(node_t, xmaximum)},
    {"items", kw_items, 0},
    {"minItems", kw_count, offsetof(node_t, min_items)},
    {"maxItems", kw_count, offsetof(node_t, max_items)},
    {"format", kw_format, 0},
    {"anyOf", kw_any_of, 0},
    {"title", NULL, 0},
    {"description", NULL, 0},
    {"$schema", NULL, 0},
    {"$id", NULL, 0},
    {"$comment", NULL, 0},
    {"examples", NULL, 0},
    {"default", NULL, 0},
};

static const struct keyword *find_keyword(const char *name)
{
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (strcmp(keywords[i].name, name) == 0)
            return &keywords[i];
    return NULL;
}

static bool compile_keywords(compiler_t *c, node_t *n, const cJSON *schema)
{
    for (const cJSON *k = schema->child; k != NULL; k = k->next) {
        const struct keyword *kw = find_keyword(k->string);
        if (kw == NULL)
            return bad_schema(c, "unsupported keyword \"%s\"", k->string);
        if (repeated(schema->child, k, false))
            return bad_schema(c, "keyword \"%s\" appears twice", k->string);
        size_t saved = path_push(&c->path, k->string);
        if (kw->compile != NULL && !kw->compile(c, n, k, kw->off))
            return false;
        path_pop(&c->path, saved);
    }
    return true;
}

static node_t *compile_node(compiler_t *c, const cJSON *schema)
{
    if (c->depth >= NS_JSONSCHEMA_MAX_DEPTH)
        return bad_schema(c, "subschemas nested deeper than %d levels",
                          NS_JSONSCHEMA_MAX_DEPTH),
               NULL;
    if (!cJSON_IsObject(schema) && !cJSON_IsBool(schema))
        return bad_schema(c, "a schema must be an object or a boolean"), NULL;
    node_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return ns_error_set(c->err, NS_ERR_NOMEM, "out of memory"), NULL;
    n->min_length = n->max_length = n->min_items = n->max_items = -1;
    n->reject_all = cJSON_IsFalse(schema);
    c->depth++;
    bool ok = !cJSON_IsObject(schema) || compile_keywords(c, n, schema);
    c->depth--;
    if (!ok) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* ---- validating ---- */

typedef struct validator {
    path_t path;
    int fail_depth; /* instance depth of the failure, to rank anyOf misses */
    ns_error_t *err;
} validator_t;

__attribute__((format(printf, 3, 4))) static bool
fail(validator_t *v, int depth, const char *fmt, ...)
{
    char msg[450];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->fail_depth = depth;
    ns_error_set(v->err, NS_ERR_INVALID, "at %s: %s", path_str(&v->path), msg);
    return false;
}

/* The T_* bits an instance has: an integral number is also an integer. */
static unsigned type_of(const cJSON *j)
{
    if (cJSON_IsNumber(j) && isfinite(j->valuedouble))
        return floor(j->valuedouble) == j->valuedouble ? T_NUMBER | T_INTEGER
                                                       : T_NUMBER;
    return cJSON_IsObject(j)   ? T_OBJECT
           : cJSON_IsArray(j)  ? T_ARRAY
           : cJSON_IsString(j) ? T_STRING
           : cJSON_IsBool(j)   ? T_BOOLEAN
           : cJSON_IsNull(j)   ? T_NULL
                               : 0;
}

static const char *type_name(const cJSON *j)
{
    unsigned t = type_of(j) & ~(unsigned)T_INTEGER;
    for (size_t i = 0; i < TYPE_COUNT; i++)
        if (t == 1u << i)
            return type_names[i];
    return cJSON_IsNumber(j) ? "non-finite number" : "invalid value";
}

/* "string", "string or null", "object or array or null". */
static void expected_types(unsigned types, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < TYPE_COUNT && used < cap; i++)
        if ((types >> i) & 1u)
            used += (size_t)snprintf(out + used, cap - used, "%s%s",
                                     used ? " or " : "", type_names[i]);
}

/* The shortest of %.15g and %.17g that reads back as d. */
static const char *num(char *out, size_t cap, double d)
{
    snprintf(out, cap, "%.15g", d);
    if (strtod(out, NULL) != d)
        snprintf(out, cap, "%.17g", d);
    return out;
}

static bool check(validator_t *v, const node_t *n, const cJSON *j, int depth);

static bool check_values(validator_t *v, const node_t *n, const cJSON *j,
                         int depth)
{
    bool in_enum = n->enum_values == NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, n->enum_values)
    {
        if (cJSON_Compare(j, e, true))
            in_enum = true;
    }
    const cJSON *values = n->enum_values ? n->enum_values : n->const_value;
    bool ok = in_enum && (n->const_value == NULL ||
                          cJSON_Compare(j, n->const_value, true));
    if (ok)
        return true;
    char *text = cJSON_PrintUnformatted(values);
    fail(v, depth, "%s %s", in_enum ? "not equal to the const" : "not one of",
         text ? text : "the allowed values");
    free(text);
    return false;
}

static bool check_string(validator_t *v, const node_t *n, const char *s,
                         int depth)
{
    long len = ns_jsonschema_utf8_length(s);
    if (len < 0)
        return fail(v, depth, "string is not valid UTF-8");
    if (n->min_length >= 0 && len < n->min_length)
        return fail(v, depth,
                    "string of %ld characters is shorter than "
                    "minLength %ld",
                    len, n->min_length);
    if (n->max_length >= 0 && len > n->max_length)
        return fail(v, depth,
                    "string of %ld characters is longer than "
                    "maxLength %ld",
                    len, n->max_length);
    if (n->format == FMT_DATE_TIME && !ns_jsonschema_is_date_time(s))
        return fail(v, depth,
                    "not an RFC 3339 date-time with a time zone "
                    "(like 2024-05-01T09:30:00Z)");
    if (n->format == FMT_DATE && (strlen(s) != 10 || !ns_jsonschema_is_date(s)))
        return fail(v, depth, "not a date (YYYY-MM-DD)");
    return true;
}

static bool check_number(validator_t *v, const node_t *n, double d, int depth)
{
    static const char *const broken[] = {
        "less than the minimum", "not greater than the exclusiveMinimum",
        "greater than the maximum", "not less than the exclusiveMaximum"};
    const bound_t *bounds[] = {&n->minimum, &n->xminimum, &n->maximum,
                               &n->xmaximum};
    for (int i = 0; i < 4; i++) {
        double limit = bounds[i]->value;
        bool ok = !bounds[i]->set || (i == 0   ? d >= limit
                                      : i == 1 ? d > limit
                                      : i == 2 ? d <= limit
                                               : d < limit);
        char a[32], b[32];
        if (!ok)
            return fail(v, depth, "%s is %s %s", num(a, sizeof(a), d),
                        broken[i], num(b, sizeof(b), limit));
    }
    return true;
}

static bool check_array(validator_t *v, const node_t *n, const cJSON *j,
                        int depth)
{
    long count = cJSON_GetArraySize(j);
    if (n->min_items >= 0 && count < n->min_items)
        return fail(v, depth, "%ld items, fewer than minItems %ld", count,
                    n->min_items);
    if (n->max_items >= 0 && count > n->max_items)
        return fail(v, depth, "%ld items, more than maxItems %ld", count,
                    n->max_items);
    int index = 0;
    for (const cJSON *item = j->child; n->items && item != NULL;
         item = item->next, index++) {
        size_t saved = path_push_index(&v->path, index);
        if (!check(v, n->items, item, depth + 1))
            return false;
        path_pop(&v->path, saved);
    }
    return true;
}

static bool check_object(validator_t *v, const node_t *n, const cJSON *j,
                         int depth)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, n->required)
    {
        if (cJSON_GetObjectItemCaseSensitive(j, r->valuestring) == NULL)
            return fail(v, depth, "missing required property \"%s\"",
                        r->valuestring);
    }
    int i = 0;
    for (const cJSON *p = n->properties ? n->properties->child : NULL;
         p != NULL; p = p->next, i++) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(j, p->string);
        if (value == NULL)
            continue;
        size_t saved = path_push(&v->path, p->string);
        if (!check(v, n->property_nodes[i], value, depth + 1))
            return false;
        path_pop(&v->path, saved);
    }
    for (const cJSON *m = j->child; n->additional && m != NULL; m = m->next) {
        if (n->properties &&
            cJSON_GetObjectItemCaseSensitive(n->properties, m->string))
            continue;
        size_t saved = path_push(&v->path, m->string);
        if (n->additional->reject_all)
            return fail(v, depth + 1,
                        "property not allowed "
                        "(additionalProperties is false)");
        if (!check(v, n->additional, m, depth + 1))
            return false;
        path_pop(&v->path, saved);
    }
    return true;
}

/* The instance must match one alternative; if none does, the report names
 * the failure that got deepest into the instance (the likeliest intent). */
static bool check_any_of(validator_t *v, const node_t *n, const cJSON *j,
                         int depth)
{
    ns_error_t best, attempt;
    int best_depth = -1;
    size_t best_index = 0;
    ns_error_t *outer = v->err;
    size_t here = v->path.len;
    v->err = &attempt;
    for (size_t i = 0; i < n->any_of_count; i++) {
        ns_error_clear(&attempt);
        bool ok = check(v, n->any_of[i], j, depth);
        path_pop(&v->path, here);
        if (ok) {
            v->err = outer;
            return true;
        }
        if (v->fail_depth > best_depth) {
            best = attempt;
            best_depth = v->fail_depth;
            best_index = i;
        }
    }
    v->err = outer;
    fail(v, depth, "matches no anyOf alternative; closest (#%zu): %s",
         best_index, best.msg);
    v->fail_depth = best_depth;
    return false;
}

static bool check(validator_t *v, const node_t *n, const cJSON *j, int depth)
{
    if (depth > NS_JSONSCHEMA_MAX_DEPTH)
        return fail(v, depth, "nested deeper than %d levels",
                    NS_JSONSCHEMA_MAX_DEPTH);
    if (n->reject_all)
        return fail(v, depth, "no value is allowed here (schema false)");
    unsigned type = type_of(j);
    if (n->types != 0 && (n->types & type) == 0) {
        char expected[80];
        expected_types(n->types, expected, sizeof(expected));
        return fail(v, depth, "expected %s, got %s", expected, type_name(j));
    }
    if ((n->enum_values || n->const_value) && !check_values(v, n, j, depth))
        return false;
    if ((type & T_STRING) && !check_string(v, n, j->valuestring, depth))
        return false;
    if ((type & T_NUMBER) && !check_number(v, n, j->valuedouble, depth))
        return false;
    if ((type & T_ARRAY) && !check_array(v, n, j, depth))
        return false;
    if ((type & T_OBJECT) && !check_object(v, n, j, depth))
        return false;
    return n->any_of_count == 0 || check_any_of(v, n, j, depth);
}

ns_jsonschema_t *ns_jsonschema_new(const cJSON *schema, ns_error_t *err)
{
    ns_jsonschema_t *s = calloc(1, sizeof(*s));
    if (s != NULL)
        s->doc = cJSON_Duplicate(schema, true);
    if (s == NULL || s->doc == NULL) {
        free(s);
        ns_error_set(err, NS_ERR_NOMEM, "jsonschema: out of memory");
        return NULL;
    }
    compiler_t c = {.err = err};
    s->root = compile_node(&c, s->doc);
    if (s->root == NULL) {
        ns_jsonschema_destroy(s);
        return NULL;
    }
    return s;
}

ns_jsonschema_t *ns_jsonschema_load(const char *path, ns_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        ns_error_set(err, NS_ERR_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        return NULL;
    }
    char *text = malloc(NS_JSONSCHEMA_MAX_FILE + 1);
    size_t len = text ? fread(text, 1, NS_JSONSCHEMA_MAX_FILE + 1, f) : 0;
    bool failed = ferror(f) != 0;
    fclose(f);
    ns_jsonschema_t *s = NULL;
    if (text == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "%s: out of memory", path);
    } else if (failed) {
        ns_error_set(err, NS_ERR_IO, "%s: read error", path);
    } else if (len > NS_JSONSCHEMA_MAX_FILE) {
        ns_error_set(err, NS_ERR_INVALID, "%s: larger than %d bytes", path,
                     NS_JSONSCHEMA_MAX_FILE);
    } else {
        const char *end = NULL;
        cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
        if (doc == NULL) {
            ns_error_set(err, NS_ERR_INVALID, "%s: invalid JSON near byte %ld",
                         path, end ? (long)(end - text) : 0L);
        } else {
            s = ns_jsonschema_new(doc, err);
            if (s == NULL && err != NULL) {
                char cause[sizeof(err->msg)];
                snprintf(cause, sizeof(cause), "%s", err->msg);
                ns_error_set(err, err->code, "%s: %s", path, cause);
            }
        }
        cJSON_Delete(doc);
    }
    free(text);
    return s;
}

const cJSON *ns_jsonschema_json(const ns_jsonschema_t *s)
{
    return s ? s->doc : NULL;
}

void ns_jsonschema_destroy(ns_jsonschema_t *s)
{
    if (s == NULL)
        return;
    node_free(s->root);
    cJSON_Delete(s->doc);
    free(s);
}

ns_err_t ns_jsonschema_validate(const ns_jsonschema_t *s, const cJSON *instance,
                                ns_error_t *err)
{
    validator_t v = {.err = err};
    if (s == NULL || instance == NULL)
        return ns_error_set(err, NS_ERR_INVALID,
                            "jsonschema: no schema or "
                            "no instance");
    return check(&v, s->root, instance, 0) ? NS_OK : NS_ERR_INVALID;
}
