/* test_jsonschema.c: the JSON Schema subset (jsonschema/jsonschema.c): every
 * keyword passing and failing, error messages with JSON Pointers, keywords
 * rejected at compile time, hostile depth and invalid UTF-8, and the
 * structurer's schemas in schemas/structure/. */
#include "ns/jsonschema.h"

#include "nstest.h"

#include <libgen.h>
#include <pthread.h>

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (j == NULL)
        NSTEST_FAIL("not JSON: %s", text);
    return j;
}

static ns_jsonschema_t *compile(const char *text)
{
    cJSON *j = parse(text);
    ns_error_t err;
    ns_error_clear(&err);
    ns_jsonschema_t *s = ns_jsonschema_new(j, &err);
    cJSON_Delete(j);
    if (s == NULL)
        NSTEST_FAIL("schema %s: %s", text, err.msg);
    return s;
}

/* The compile error of a schema, or "compiled". */
static const char *compile_error(const char *text)
{
    static ns_error_t err;
    ns_error_clear(&err);
    cJSON *j = parse(text);
    ns_jsonschema_t *s = ns_jsonschema_new(j, &err);
    cJSON_Delete(j);
    if (s != NULL) {
        ns_jsonschema_destroy(s);
        return "compiled";
    }
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    return err.msg;
}

/* "ok", or the validation error of a (cJSON) instance. */
static const char *check_json(const ns_jsonschema_t *s, const cJSON *instance)
{
    static ns_error_t err;
    ns_error_clear(&err);
    ns_err_t rc = ns_jsonschema_validate(s, instance, &err);
    if (rc == NS_OK)
        return "ok";
    ASSERT_EQ(rc, NS_ERR_INVALID);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    return err.msg;
}

static const char *check(const ns_jsonschema_t *s, const char *instance)
{
    cJSON *j = parse(instance);
    const char *result = check_json(s, j);
    cJSON_Delete(j);
    return result;
}

/* Validates instance against a schema given as text. */
static const char *V(const char *schema, const char *instance)
{
    ns_jsonschema_t *s = compile(schema);
    const char *result = check(s, instance);
    ns_jsonschema_destroy(s);
    return result;
}

TEST(type_names_and_arrays)
{
    ASSERT_STREQ(V("{\"type\":\"object\"}", "{}"), "ok");
    ASSERT_STREQ(V("{\"type\":\"array\"}", "[]"), "ok");
    ASSERT_STREQ(V("{\"type\":\"string\"}", "\"\""), "ok");
    ASSERT_STREQ(V("{\"type\":\"number\"}", "1.5"), "ok");
    ASSERT_STREQ(V("{\"type\":\"number\"}", "2"), "ok");
    ASSERT_STREQ(V("{\"type\":\"boolean\"}", "false"), "ok");
    ASSERT_STREQ(V("{\"type\":\"null\"}", "null"), "ok");
    ASSERT_STREQ(V("{\"type\":\"object\"}", "[]"),
                 "at (root): expected object, got array");
    ASSERT_STREQ(V("{\"type\":\"array\"}", "{}"),
                 "at (root): expected array, got object");
    ASSERT_STREQ(V("{\"type\":\"string\"}", "1"),
                 "at (root): expected string, got number");
    ASSERT_STREQ(V("{\"type\":\"number\"}", "\"1\""),
                 "at (root): expected number, got string");
    ASSERT_STREQ(V("{\"type\":\"boolean\"}", "0"),
                 "at (root): expected boolean, got number");
    ASSERT_STREQ(V("{\"type\":\"null\"}", "false"),
                 "at (root): expected null, got boolean");
    ASSERT_STREQ(V("{\"type\":[\"string\",\"null\"]}", "null"), "ok");
    ASSERT_STREQ(V("{\"type\":[\"string\",\"null\"]}", "\"x\""), "ok");
    ASSERT_STREQ(V("{\"type\":[\"string\",\"null\"]}", "7"),
                 "at (root): expected string or null, got number");
    ASSERT_STREQ(V("{\"type\":[\"object\",\"array\",\"null\"]}", "true"),
                 "at (root): expected object or array or null, got boolean");
}

TEST(integer_is_a_number_without_fraction)
{
    const char *schema = "{\"type\":\"integer\"}";
    ASSERT_STREQ(V(schema, "3"), "ok");
    ASSERT_STREQ(V(schema, "-3"), "ok");
    ASSERT_STREQ(V(schema, "3.0"), "ok");
    ASSERT_STREQ(V(schema, "1e3"), "ok");
    ASSERT_STREQ(V(schema, "3.5"), "at (root): expected integer, got number");
    ASSERT_STREQ(V(schema, "\"3\""), "at (root): expected integer, got string");
    /* Not finite: no JSON type at all (cJSON can hold one if built in C). */
    ns_jsonschema_t *s = compile("{\"type\":[\"number\",\"integer\"]}");
    cJSON *inf = cJSON_CreateNumber(1.0 / 0.0);
    ASSERT_STREQ(check_json(s, inf),
                 "at (root): expected integer or number, got non-finite "
                 "number");
    cJSON_Delete(inf);
    ns_jsonschema_destroy(s);
}

TEST(properties_required_and_pointers)
{
    const char *schema =
        "{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"properties\":{"
        "\"a\":{\"type\":\"string\"},"
        "\"b\":{\"type\":\"object\",\"properties\":{"
        "\"c/d\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},"
        "\"e~f\":{\"type\":\"null\"}}}}}";
    ASSERT_STREQ(V(schema, "{\"a\":\"x\",\"b\":{}}"), "ok");
    ASSERT_STREQ(V(schema, "{\"b\":{}}"),
                 "at (root): missing required property \"a\"");
    ASSERT_STREQ(V(schema, "{\"a\":1,\"b\":{}}"),
                 "at /a: expected string, got number");
    /* JSON Pointer escapes: "/" is ~1 and "~" is ~0. */
    ASSERT_STREQ(V(schema, "{\"a\":\"x\",\"b\":{\"c/d\":[1,2,\"3\"]}}"),
                 "at /b/c~1d/2: expected integer, got string");
    ASSERT_STREQ(V(schema, "{\"a\":\"x\",\"b\":{\"e~f\":0}}"),
                 "at /b/e~0f: expected null, got number");
    /* Properties are checked in schema order, not instance order. */
    ASSERT_STREQ(V(schema, "{\"b\":{\"e~f\":0},\"a\":1}"),
                 "at /a: expected string, got number");
    /* Keywords of one type do not apply to another. */
    ASSERT_STREQ(V("{\"required\":[\"a\"],\"minLength\":3}", "[1]"), "ok");
}

TEST(additional_properties)
{
    const char *closed = "{\"properties\":{\"a\":{}},"
                         "\"additionalProperties\":false}";
    ASSERT_STREQ(V(closed, "{\"a\":1}"), "ok");
    ASSERT_STREQ(V(closed, "{\"a\":1,\"zz\":2}"),
                 "at /zz: property not allowed (additionalProperties is "
                 "false)");
    const char *typed = "{\"properties\":{\"a\":{}},"
                        "\"additionalProperties\":{\"type\":\"number\"}}";
    ASSERT_STREQ(V(typed, "{\"a\":\"x\",\"b\":1,\"c\":2.5}"), "ok");
    ASSERT_STREQ(V(typed, "{\"a\":\"x\",\"b\":1,\"c\":\"no\"}"),
                 "at /c: expected number, got string");
    ASSERT_STREQ(V("{\"additionalProperties\":true}", "{\"x\":1}"), "ok");
    ASSERT_STREQ(V("{\"additionalProperties\":false}", "{}"), "ok");
}

TEST(enum_and_const)
{
    const char *schema = "{\"enum\":[\"low\",\"normal\",\"high\",1,null,"
                         "{\"a\":[1]}]}";
    ASSERT_STREQ(V(schema, "\"low\""), "ok");
    ASSERT_STREQ(V(schema, "1.0"), "ok");
    ASSERT_STREQ(V(schema, "null"), "ok");
    ASSERT_STREQ(V(schema, "{\"a\":[1]}"), "ok");
    ASSERT_STREQ(V(schema, "\"LOW\""),
                 "at (root): not one of "
                 "[\"low\",\"normal\",\"high\",1,null,{\"a\":[1]}]");
    ASSERT_STREQ(V(schema, "{\"a\":[1],\"b\":2}"),
                 "at (root): not one of "
                 "[\"low\",\"normal\",\"high\",1,null,{\"a\":[1]}]");
    ASSERT_STREQ(V("{\"const\":{\"v\":1}}", "{\"v\":1}"), "ok");
    ASSERT_STREQ(V("{\"const\":{\"v\":1}}", "{\"v\":2}"),
                 "at (root): not equal to the const {\"v\":1}");
    ASSERT_STREQ(V("{\"const\":false}", "0"),
                 "at (root): not equal to the const false");
}

TEST(string_length_counts_code_points)
{
    const char *schema = "{\"minLength\":2,\"maxLength\":5}";
    ASSERT_STREQ(V(schema, "\"ab\""), "ok");
    ASSERT_STREQ(V(schema, "\"h\\u00e9llo\""), "ok"); /* 6 bytes */
    ASSERT_STREQ(V(schema, "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\""), "ok");
    ASSERT_STREQ(V(schema, "\"a\""), "at (root): string of 1 characters is "
                                     "shorter than minLength 2");
    ASSERT_STREQ(V(schema, "\"h\\u00e9llo!\""),
                 "at (root): string of 6 characters is longer than "
                 "maxLength 5");
    ASSERT_STREQ(V("{\"maxLength\":0}", "\"\""), "ok");
    ASSERT_STREQ(V(schema, "12345678"), "ok"); /* not a string */
}

TEST(invalid_utf8_strings_fail_cleanly)
{
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "ab\xc3",           /* truncated sequence */
        "\xc0\xaf",         /* overlong "/" */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "caf\xe9",          /* Latin-1 */
    };
    ns_jsonschema_t *s = compile("{\"properties\":{\"title\":"
                                 "{\"type\":\"string\",\"maxLength\":300}}}");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "title", bad[i]);
        ASSERT_STREQ(check_json(s, obj),
                     "at /title: string is not valid UTF-8");
        cJSON_Delete(obj);
    }
    ns_jsonschema_destroy(s);
}

TEST(number_bounds)
{
    const char *closed = "{\"minimum\":1,\"maximum\":10}";
    ASSERT_STREQ(V(closed, "1"), "ok");
    ASSERT_STREQ(V(closed, "10"), "ok");
    ASSERT_STREQ(V(closed, "0.5"), "at (root): 0.5 is less than the minimum 1");
    ASSERT_STREQ(V(closed, "10.25"),
                 "at (root): 10.25 is greater than the maximum 10");
    const char *open = "{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1.5}";
    ASSERT_STREQ(V(open, "0.1"), "ok");
    ASSERT_STREQ(V(open, "0"),
                 "at (root): 0 is not greater than the exclusiveMinimum 0");
    ASSERT_STREQ(V(open, "1.5"),
                 "at (root): 1.5 is not less than the exclusiveMaximum 1.5");
    ASSERT_STREQ(V(open, "\"1.5\""), "ok"); /* not a number */
    ASSERT_STREQ(V("{\"minimum\":-1e300}", "-1e301"),
                 "at (root): -1e+301 is less than the minimum -1e+300");
}

TEST(arrays_items_and_counts)
{
    const char *schema = "{\"type\":\"array\",\"minItems\":1,\"maxItems\":3,"
                         "\"items\":{\"type\":\"string\",\"minLength\":1}}";
    ASSERT_STREQ(V(schema, "[\"a\"]"), "ok");
    ASSERT_STREQ(V(schema, "[\"a\",\"b\",\"c\"]"), "ok");
    ASSERT_STREQ(V(schema, "[]"), "at (root): 0 items, fewer than minItems 1");
    ASSERT_STREQ(V(schema, "[\"a\",\"b\",\"c\",\"d\"]"),
                 "at (root): 4 items, more than maxItems 3");
    ASSERT_STREQ(V(schema, "[\"a\",\"\"]"),
                 "at /1: string of 0 characters is shorter than minLength 1");
    ASSERT_STREQ(V("{\"items\":false}", "[]"), "ok");
    ASSERT_STREQ(V("{\"items\":false}", "[1]"),
                 "at /0: no value is allowed here (schema false)");
}

TEST(format_date_time)
{
    const char *schema = "{\"format\":\"date-time\"}";
    static const char *const good[] = {
        "\"2024-05-01T09:30:00Z\"",
        "\"2024-05-01t09:30:00z\"",
        "\"2024-05-01T09:30:00.123456+02:00\"",
        "\"2024-12-31T23:59:59-12:00\"",
        "\"2024-02-29T00:00:00Z\"",
        "\"2000-02-29T00:00:00Z\"",
        "\"1998-12-31T23:59:60Z\"",
        "\"1998-12-31T15:59:60.5-08:00\"",
        "\"1999-01-01T00:29:60+00:30\"",
    };
    static const char *const bad[] = {
        "\"2024-05-01T09:30:00\"",       /* no offset */
        "\"2024-05-01 09:30:00Z\"",      /* space */
        "\"2024-05-01T09:30Z\"",         /* no seconds */
        "\"2024-05-01T24:00:00Z\"",      /* hour */
        "\"2024-05-01T09:60:00Z\"",      /* minute */
        "\"2024-05-01T09:30:61Z\"",      /* second */
        "\"2024-05-01T09:30:60Z\"",      /* leap second not at 23:59 UTC */
        "\"1998-12-31T23:59:60+01:00\"", /* ... which is 22:59 UTC */
        "\"2023-02-29T00:00:00Z\"",      /* not a leap year */
        "\"1900-02-29T00:00:00Z\"",      /* century, not a leap year */
        "\"2024-04-31T00:00:00Z\"",      /* April has 30 days */
        "\"2024-13-01T00:00:00Z\"",      /* month */
        "\"2024-00-10T00:00:00Z\"",      /* month */
        "\"2024-05-00T00:00:00Z\"",      /* day */
        "\"2024-05-01T09:30:00.Z\"",     /* empty fraction */
        "\"2024-05-01T09:30:00+0200\"",  /* offset without colon */
        "\"2024-05-01T09:30:00+24:00\"", /* offset hour */
        "\"2024-05-01T09:30:00+02:60\"", /* offset minute */
        "\"2024-05-01T09:30:00Zjunk\"",  /* trailing text */
        "\"24-05-01T09:30:00Z\"",        /* short year */
        "\"2024-5-01T09:30:00Z\"",       /* short month */
        "\"2024-05-01\"",                /* a date only */
        "\"\"",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (strcmp(V(schema, good[i]), "ok") != 0)
            NSTEST_FAIL("%s: %s", good[i], V(schema, good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (strcmp(V(schema, bad[i]), "ok") == 0)
            NSTEST_FAIL("%s passed", bad[i]);
    ASSERT_STREQ(V(schema, "\"tomorrow\""),
                 "at (root): not an RFC 3339 date-time with a time zone "
                 "(like 2024-05-01T09:30:00Z)");
    ASSERT_STREQ(V(schema, "42"), "ok"); /* formats apply to strings only */
}

TEST(format_date)
{
    const char *schema = "{\"format\":\"date\"}";
    ASSERT_STREQ(V(schema, "\"2024-02-29\""), "ok");
    ASSERT_STREQ(V(schema, "\"2000-02-29\""), "ok");
    ASSERT_STREQ(V(schema, "\"0001-01-01\""), "ok");
    ASSERT_STREQ(V(schema, "\"2023-02-29\""),
                 "at (root): not a date (YYYY-MM-DD)");
    ASSERT_STREQ(V(schema, "\"2100-02-29\""),
                 "at (root): not a date (YYYY-MM-DD)");
    ASSERT_STREQ(V(schema, "\"2024-06-31\""),
                 "at (root): not a date (YYYY-MM-DD)");
    ASSERT_STREQ(V(schema, "\"2024-06-01T00:00:00Z\""),
                 "at (root): not a date (YYYY-MM-DD)");
    ASSERT_STREQ(V(schema, "\"2024/06/01\""),
                 "at (root): not a date (YYYY-MM-DD)");
}

TEST(any_of_reports_the_closest_alternative)
{
    const char *schema = "{\"properties\":{\"data\":{\"anyOf\":["
                         "{\"type\":\"object\",\"required\":[\"n\"],"
                         "\"properties\":{\"n\":{\"type\":\"string\"}}},"
                         "{\"type\":\"object\",\"required\":[\"m\"],"
                         "\"properties\":{\"m\":{\"type\":\"integer\"}}},"
                         "{\"type\":\"null\"}]}}}";
    ASSERT_STREQ(V(schema, "{\"data\":{\"n\":\"x\"}}"), "ok");
    ASSERT_STREQ(V(schema, "{\"data\":{\"m\":2}}"), "ok");
    ASSERT_STREQ(V(schema, "{\"data\":null}"), "ok");
    /* The second branch got deepest: it is the one reported. */
    ASSERT_STREQ(V(schema, "{\"data\":{\"m\":2.5}}"),
                 "at /data: matches no anyOf alternative; closest (#1): "
                 "at /data/m: expected integer, got number");
    /* A tie goes to the first branch. */
    ASSERT_STREQ(V(schema, "{\"data\":{}}"),
                 "at /data: matches no anyOf alternative; closest (#0): "
                 "at /data: missing required property \"n\"");
    /* The path is restored between branches. */
    ASSERT_STREQ(V("{\"anyOf\":[{\"items\":{\"type\":\"string\"}},"
                   "{\"type\":\"array\",\"maxItems\":0}]}",
                   "[1]"),
                 "at (root): matches no anyOf alternative; closest (#0): "
                 "at /0: expected string, got number");
}

TEST(annotations_and_boolean_schemas)
{
    ASSERT_STREQ(V("{\"$schema\":\"https://json-schema.org/draft/2020-12/"
                   "schema\",\"$id\":\"x\",\"title\":\"t\",\"description\":"
                   "\"d\",\"$comment\":\"c\",\"examples\":[1],\"default\":1}",
                   "[1,2]"),
                 "ok");
    ASSERT_STREQ(V("true", "{\"anything\":[1]}"), "ok");
    ASSERT_STREQ(V("{}", "null"), "ok");
    ASSERT_STREQ(V("false", "null"),
                 "at (root): no value is allowed here (schema false)");
    ASSERT_STREQ(V("{\"properties\":{\"gone\":false}}", "{\"gone\":1}"),
                 "at /gone: no value is allowed here (schema false)");
}

TEST(unsupported_keywords_are_rejected_at_compile_time)
{
    ASSERT_STREQ(compile_error("{\"properties\":{\"a\":{\"type\":\"string\","
                               "\"pattern\":\"^x\"}}}"),
                 "schema at /properties/a: unsupported keyword \"pattern\"");
    ASSERT_STREQ(compile_error("{\"$ref\":\"#/$defs/a\"}"),
                 "schema at (root): unsupported keyword \"$ref\"");
    ASSERT_STREQ(compile_error("{\"anyOf\":[{},{\"oneOf\":[{}]}]}"),
                 "schema at /anyOf/1: unsupported keyword \"oneOf\"");
    ASSERT_STREQ(compile_error("{\"items\":{\"uniqueItems\":true}}"),
                 "schema at /items: unsupported keyword \"uniqueItems\"");
    ASSERT_STREQ(compile_error("{\"additionalProperties\":{\"allOf\":[]}}"),
                 "schema at /additionalProperties: unsupported keyword "
                 "\"allOf\"");
    ASSERT_STREQ(compile_error("{\"properties\":{\"a/b\":{\"if\":{}}}}"),
                 "schema at /properties/a~1b: unsupported keyword \"if\"");
    ASSERT_STREQ(compile_error("{\"format\":\"email\"}"),
                 "schema at /format: unsupported format (only \"date-time\" "
                 "and \"date\" are enforced)");
    ASSERT_STREQ(compile_error("{\"items\":[{}]}"),
                 "schema at /items: must be one schema (the array form is "
                 "prefixItems, which is not supported)");
}

TEST(malformed_keyword_values_are_rejected)
{
    ASSERT_STREQ(compile_error("{\"type\":\"float\"}"),
                 "schema at /type: unknown type \"float\"");
    ASSERT_STREQ(compile_error("{\"type\":[\"string\",\"string\"]}"),
                 "schema at /type: unknown or repeated type in the array");
    ASSERT_STREQ(compile_error("{\"type\":[]}"),
                 "schema at /type: must be a type name or a non-empty array "
                 "of them");
    ASSERT_STREQ(compile_error("{\"minLength\":-1}"),
                 "schema at /minLength: must be a non-negative integer");
    ASSERT_STREQ(compile_error("{\"maxItems\":1.5}"),
                 "schema at /maxItems: must be a non-negative integer");
    ASSERT_STREQ(compile_error("{\"minimum\":\"1\"}"),
                 "schema at /minimum: must be a number");
    ASSERT_STREQ(compile_error("{\"required\":[\"a\",1]}"),
                 "schema at /required: must be an array of property names");
    ASSERT_STREQ(compile_error("{\"required\":[\"a\",\"a\"]}"),
                 "schema at /required: \"a\" is listed twice");
    ASSERT_STREQ(compile_error("{\"enum\":[]}"),
                 "schema at /enum: must be a non-empty array");
    ASSERT_STREQ(compile_error("{\"anyOf\":{}}"),
                 "schema at /anyOf: must be a non-empty array of schemas");
    ASSERT_STREQ(compile_error("{\"properties\":[]}"),
                 "schema at /properties: must be an object");
    ASSERT_STREQ(compile_error("{\"properties\":{\"a\":1}}"),
                 "schema at /properties/a: a schema must be an object or a "
                 "boolean");
    ASSERT_STREQ(compile_error("[]"),
                 "schema at (root): a schema must be an object or a boolean");
    /* cJSON keeps duplicate keys; a second "type" must not hide the first. */
    ASSERT_STREQ(compile_error("{\"type\":\"string\",\"type\":\"null\"}"),
                 "schema at (root): keyword \"type\" appears twice");
    ASSERT_STREQ(compile_error("{\"properties\":{\"a\":{},\"a\":{}}}"),
                 "schema at /properties/a: property defined twice");
}

/* {"items": {"items": ... {"type": "string"}}} with levels "items". */
static char *nested_items_schema(int levels)
{
    size_t cap = (size_t)levels * 16 + 64, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < levels; i++)
        len += (size_t)snprintf(text + len, cap - len, "{\"items\":");
    len += (size_t)snprintf(text + len, cap - len, "{\"type\":\"string\"}");
    for (int i = 0; i < levels; i++)
        text[len++] = '}';
    text[len] = '\0';
    return text;
}

/* [[[...["x"]...]]] nested levels deep, built without the parser's limit. */
static cJSON *nested_arrays(int levels, cJSON *leaf)
{
    cJSON *j = leaf;
    for (int i = 0; i < levels; i++) {
        cJSON *outer = cJSON_CreateArray();
        cJSON_AddItemToArray(outer, j);
        j = outer;
    }
    return j;
}

TEST(deep_nesting)
{
    /* Schemas: at most NS_JSONSCHEMA_MAX_DEPTH subschemas deep. */
    char *text = nested_items_schema(NS_JSONSCHEMA_MAX_DEPTH);
    const char *msg = compile_error(text);
    ASSERT(strstr(msg, ": subschemas nested deeper than 64 levels") != NULL);
    ASSERT(strncmp(msg, "schema at /items/items/", 23) == 0);
    free(text);

    text = nested_items_schema(NS_JSONSCHEMA_MAX_DEPTH - 1);
    ns_jsonschema_t *s = compile(text);
    free(text);
    cJSON *ok =
        nested_arrays(NS_JSONSCHEMA_MAX_DEPTH - 1, cJSON_CreateString("x"));
    ASSERT_STREQ(check_json(s, ok), "ok");
    cJSON_Delete(ok);
    /* One level deeper than the schema: the leaf is an array, and the
     * pointer names the place. */
    cJSON *deep =
        nested_arrays(NS_JSONSCHEMA_MAX_DEPTH, cJSON_CreateString("x"));
    msg = check_json(s, deep);
    ASSERT(strstr(msg, ": expected string, got array") != NULL);
    ASSERT(strncmp(msg, "at /0/0/0/", 10) == 0);
    cJSON_Delete(deep);

    /* Hostile instances: validation follows the schema, not the instance,
     * so a very deep instance costs no stack. */
    cJSON *hostile = nested_arrays(20000, cJSON_CreateNull());
    char expected[512] = "at ";
    for (int i = 0; i < NS_JSONSCHEMA_MAX_DEPTH - 1; i++)
        strcat(expected, "/0");
    strcat(expected, ": expected string, got array");
    ASSERT_STREQ(check_json(s, hostile), expected);
    ns_jsonschema_destroy(s);
    s = compile("{\"type\":\"array\",\"items\":{\"type\":\"array\"}}");
    ASSERT_STREQ(check_json(s, hostile), "ok");
    ns_jsonschema_destroy(s);
    s = compile("{\"enum\":[[[[1]]]]}");
    ASSERT_STREQ(check_json(s, hostile), "at (root): not one of [[[[1]]]]");
    ns_jsonschema_destroy(s);
    cJSON_Delete(hostile);
}

TEST(schema_is_copied_and_given_back)
{
    cJSON *j = parse("{\"type\":\"string\",\"description\":\"kept\"}");
    ns_jsonschema_t *s = ns_jsonschema_new(j, NULL);
    ASSERT(s != NULL);
    ASSERT(ns_jsonschema_json(s) != j);
    ASSERT(cJSON_Compare(ns_jsonschema_json(s), j, 1));
    cJSON_Delete(j); /* not owned by s */
    ASSERT_STREQ(check(s, "\"x\""), "ok");
    /* A NULL err is allowed everywhere. */
    cJSON *num = cJSON_CreateNumber(1);
    ASSERT_EQ(ns_jsonschema_validate(s, num, NULL), NS_ERR_INVALID);
    cJSON_Delete(num);
    ns_jsonschema_destroy(s);
    ns_jsonschema_destroy(NULL);
    cJSON *bad = parse("{\"pattern\":\"x\"}");
    ASSERT(ns_jsonschema_new(bad, NULL) == NULL);
    cJSON_Delete(bad);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(text, 1, len, f), len);
    fclose(f);
}

TEST(load_errors_name_the_file)
{
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT(ns_jsonschema_load("/nonexistent/schema.json", &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_IO);
    ASSERT(strncmp(err.msg, "/nonexistent/schema.json: ", 26) == 0);

    char dir[] = "/tmp/ns_jsonschema_XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/s.json", dir);

    write_file(path, "{\"type\": }", 10);
    ASSERT(ns_jsonschema_load(path, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    ASSERT(strstr(err.msg, "s.json: invalid JSON near byte 9") != NULL);

    write_file(path, "{\"oneOf\": []}", 13);
    ASSERT(ns_jsonschema_load(path, &err) == NULL);
    ASSERT(strstr(err.msg, "s.json: schema at (root): unsupported keyword "
                           "\"oneOf\"") != NULL);

    /* 1 MiB + 1 of valid JSON (spaces around {}) is too large. */
    size_t big = NS_JSONSCHEMA_MAX_FILE + 1;
    char *text = malloc(big);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    write_file(path, text, big);
    ASSERT(ns_jsonschema_load(path, &err) == NULL);
    ASSERT(strstr(err.msg, "s.json: larger than 1048576 bytes") != NULL);
    text[1] = '{'; /* "{ ... }", exactly 1 MiB, is not */
    write_file(path, text + 1, big - 1);
    ns_jsonschema_t *s = ns_jsonschema_load(path, &err);
    if (s == NULL)
        NSTEST_FAIL("1 MiB schema: %s", err.msg);
    ns_jsonschema_destroy(s);
    free(text);
    unlink(path);
    rmdir(dir);
}

/* ---- the structurer's schemas ---- */

/* schemas/structure/<name> in the source tree (NS_SRC, else from here). */
static void structure_path(char *out, size_t cap, const char *name)
{
    const char *src = getenv("NS_SRC");
    if (src != NULL && *src != '\0') {
        snprintf(out, cap, "%s/schemas/structure/%s", src, name);
        return;
    }
    char here[4096];
    snprintf(here, sizeof(here), "%s", __FILE__);
    /* tests/unit/test_jsonschema.c -> the repository root */
    char *root = dirname(dirname(dirname(here)));
    snprintf(out, cap, "%s/schemas/structure/%s", root, name);
}

static ns_jsonschema_t *load_structure(const char *name)
{
    char path[4096];
    structure_path(path, sizeof(path), name);
    ns_error_t err;
    ns_error_clear(&err);
    ns_jsonschema_t *s = ns_jsonschema_load(path, &err);
    if (s == NULL)
        NSTEST_FAIL("%s: %s (set NS_SRC to the repo root)", path, err.msg);
    return s;
}

static const char *const type_names[] = {"event", "task", "note", "question",
                                         "file"};

/* OpenAI strict mode: every object closed and every property required. */
static void assert_strict(const cJSON *schema, const char *where)
{
    if (!cJSON_IsObject(schema))
        return;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    if (props != NULL) {
        const cJSON *required =
            cJSON_GetObjectItemCaseSensitive(schema, "required");
        if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(
                schema, "additionalProperties")))
            NSTEST_FAIL("%s: an object without additionalProperties false",
                        where);
        ASSERT_EQ(cJSON_GetArraySize(required), cJSON_GetArraySize(props));
        const cJSON *p;
        cJSON_ArrayForEach(p, props)
        {
            int listed = 0;
            const cJSON *r;
            cJSON_ArrayForEach(r, required)
            {
                listed |= strcmp(r->valuestring, p->string) == 0;
            }
            if (!listed)
                NSTEST_FAIL("%s: property %s is not required", where,
                            p->string);
            assert_strict(p, where);
        }
    }
    const cJSON *any_of = cJSON_GetObjectItemCaseSensitive(schema, "anyOf");
    const cJSON *branch;
    cJSON_ArrayForEach(branch, any_of)
    {
        assert_strict(branch, where);
    }
    assert_strict(cJSON_GetObjectItemCaseSensitive(schema, "items"), where);
}

TEST(structure_schemas_load_and_are_strict)
{
    ns_jsonschema_t *answer = load_structure("answer.json");
    const cJSON *answer_json = ns_jsonschema_json(answer);
    assert_strict(answer_json, "answer.json");
    ASSERT(cJSON_IsObject(answer_json));
    ASSERT_STREQ(
        cJSON_GetObjectItemCaseSensitive(answer_json, "type")->valuestring,
        "object");
    const cJSON *props =
        cJSON_GetObjectItemCaseSensitive(answer_json, "properties");
    const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(props, "type"), "enum");
    const cJSON *any_of = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(props, "data"), "anyOf");
    ASSERT_EQ(cJSON_GetArraySize(kinds), 5);
    ASSERT_EQ(cJSON_GetArraySize(any_of), 5);
    for (int i = 0; i < 5; i++) {
        char file[64];
        snprintf(file, sizeof(file), "%s.json", type_names[i]);
        ns_jsonschema_t *s = load_structure(file);
        assert_strict(ns_jsonschema_json(s), file);
        ASSERT_STREQ(cJSON_GetArrayItem(kinds, i)->valuestring, type_names[i]);
        /* answer.json inlines the type file, object for object. */
        if (!cJSON_Compare(cJSON_GetArrayItem(any_of, i), ns_jsonschema_json(s),
                           1))
            NSTEST_FAIL("answer.json anyOf/%d differs from %s", i, file);
        ns_jsonschema_destroy(s);
    }
    ns_jsonschema_destroy(answer);
}

/* Validates data against <type>.json and {"type", "data"} against
 * answer.json; both must agree. */
static const char *check_structure(const char *type, const char *data)
{
    char file[64];
    snprintf(file, sizeof(file), "%s.json", type);
    ns_jsonschema_t *s = load_structure(file);
    static char result[600];
    snprintf(result, sizeof(result), "%s", check(s, data));
    ns_jsonschema_destroy(s);

    char wrapped[4096];
    snprintf(wrapped, sizeof(wrapped), "{\"type\":\"%s\",\"data\":%s}", type,
             data);
    ns_jsonschema_t *answer = load_structure("answer.json");
    const char *whole = check(answer, wrapped);
    if ((strcmp(whole, "ok") == 0) != (strcmp(result, "ok") == 0))
        NSTEST_FAIL("%s %s: answer.json says %s, %s says %s", type, data, whole,
                    file, result);
    ns_jsonschema_destroy(answer);
    return result;
}

TEST(structure_good_examples)
{
    ASSERT_STREQ(check_structure("event",
                                 "{\"title\":\"Standup\",\"starts_at\":"
                                 "\"2024-05-02T09:30:00+02:00\",\"ends_at\":"
                                 "null,\"location\":\"Room B2\"}"),
                 "ok");
    ASSERT_STREQ(check_structure("event", "{\"title\":\"Party\",\"starts_at\":"
                                          "null,\"ends_at\":null,"
                                          "\"location\":null}"),
                 "ok");
    ASSERT_STREQ(check_structure("task", "{\"title\":\"Send the invoice\","
                                         "\"due_at\":\"2024-05-03T17:00:00Z\","
                                         "\"priority\":\"high\",\"done\":"
                                         "false}"),
                 "ok");
    ASSERT_STREQ(check_structure("note", "{\"title\":\"Wi-Fi\",\"body\":"
                                         "\"\\u043f\\u0430\\u0440\\u043e\\u043b"
                                         "\\u044c: hunter2\"}"),
                 "ok");
    ASSERT_STREQ(check_structure("note", "{\"title\":\"x\",\"body\":\"\"}"),
                 "ok");
    ASSERT_STREQ(check_structure("question",
                                 "{\"question\":\"Who has the key?\","
                                 "\"topic\":null}"),
                 "ok");
    ASSERT_STREQ(check_structure("file", "{\"description\":\"Scan of the "
                                         "lease, 3 pages\"}"),
                 "ok");
}

TEST(structure_bad_examples)
{
    ASSERT_STREQ(check_structure("task", "{\"title\":\"x\",\"due_at\":12345,"
                                         "\"priority\":\"low\",\"done\":"
                                         "true}"),
                 "at /due_at: expected string or null, got number");
    ASSERT_STREQ(check_structure("task", "{\"title\":\"x\",\"due_at\":"
                                         "\"2024-05-03\",\"priority\":\"low\","
                                         "\"done\":true}"),
                 "at /due_at: not an RFC 3339 date-time with a time zone "
                 "(like 2024-05-01T09:30:00Z)");
    ASSERT_STREQ(check_structure("task", "{\"title\":\"x\",\"due_at\":null,"
                                         "\"priority\":\"urgent\",\"done\":"
                                         "true}"),
                 "at /priority: not one of [\"low\",\"normal\",\"high\"]");
    ASSERT_STREQ(check_structure("task", "{\"title\":\"x\",\"due_at\":null,"
                                         "\"priority\":\"low\"}"),
                 "at (root): missing required property \"done\"");
    ASSERT_STREQ(check_structure("event", "{\"title\":\"\",\"starts_at\":"
                                          "null,\"ends_at\":null,"
                                          "\"location\":null}"),
                 "at /title: string of 0 characters is shorter than "
                 "minLength 1");
    ASSERT_STREQ(check_structure("note", "{\"title\":\"x\",\"body\":\"y\","
                                         "\"tags\":[]}"),
                 "at /tags: property not allowed (additionalProperties is "
                 "false)");
    ASSERT_STREQ(check_structure("question", "{\"question\":\"Why?\"}"),
                 "at (root): missing required property \"topic\"");
    ASSERT_STREQ(check_structure("file", "[]"),
                 "at (root): expected object, got array");

    /* Over-long text, counted in characters. */
    char data[1200];
    char title[700] = "";
    for (int i = 0; i < 301; i++)
        strcat(title, "\xc3\xa9");
    snprintf(data, sizeof(data), "{\"title\":\"%s\",\"body\":\"\"}", title);
    ASSERT_STREQ(check_structure("note", data),
                 "at /title: string of 301 characters is longer than "
                 "maxLength 300");
}

TEST(structure_answer_messages)
{
    ns_jsonschema_t *answer = load_structure("answer.json");
    ASSERT_STREQ(check(answer, "{\"type\":\"memo\",\"data\":{\"description\":"
                               "\"x\"}}"),
                 "at /type: not one of "
                 "[\"event\",\"task\",\"note\",\"question\",\"file\"]");
    ASSERT_STREQ(check(answer, "{\"type\":\"file\"}"),
                 "at (root): missing required property \"data\"");
    /* The branch that got furthest is named: here the task's due_at. */
    ASSERT_STREQ(check(answer, "{\"type\":\"task\",\"data\":{\"title\":\"x\","
                               "\"due_at\":1,\"priority\":\"low\","
                               "\"done\":false}}"),
                 "at /data: matches no anyOf alternative; closest (#1): "
                 "at /data/due_at: expected string or null, got number");
    /* answer.json alone does not tie data to type (see the README). */
    ASSERT_STREQ(check(answer, "{\"type\":\"task\",\"data\":{\"description\":"
                               "\"x\"}}"),
                 "ok");
    ns_jsonschema_destroy(answer);
}

/* ---- thread safety ---- */

static void *validate_many(void *arg)
{
    const ns_jsonschema_t *s = arg;
    cJSON *good = cJSON_Parse("{\"type\":\"question\",\"data\":"
                              "{\"question\":\"q\",\"topic\":null}}");
    cJSON *bad = cJSON_Parse("{\"type\":\"question\",\"data\":"
                             "{\"question\":\"\",\"topic\":null}}");
    long failures = 0;
    for (int i = 0; i < 2000; i++) {
        ns_error_t err;
        failures += ns_jsonschema_validate(s, good, &err) != NS_OK;
        failures += ns_jsonschema_validate(s, bad, &err) != NS_ERR_INVALID;
        failures += strstr(err.msg, "at /data/question: string of 0") == NULL;
    }
    cJSON_Delete(good);
    cJSON_Delete(bad);
    return (void *)failures;
}

TEST(one_schema_many_threads)
{
    ns_jsonschema_t *s = load_structure("answer.json");
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, validate_many, s), 0);
    for (int i = 0; i < 4; i++) {
        void *failures = NULL;
        pthread_join(threads[i], &failures);
        ASSERT_EQ((long)failures, 0);
    }
    ns_jsonschema_destroy(s);
}

NSTEST_MAIN
