/*
 * test_filter.c — payload filters (engine/filter.c): every condition type,
 * clause combinations, nested filters, dotted keys, missing fields, type
 * mismatches, and every malformed-filter error with the path it names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/filter.h"

/* Parses filter and payload (NULL: no payload) and evaluates. */
static bool matches(const char *filter, const char *payload) {
    cairn_filter *f = NULL;
    cairn_status st = cairn_filter_parse(filter, strlen(filter), &f);
    if (st != CAIRN_OK) {
        print_error("filter %s: %s: %s\n", filter, cairn_status_name(st),
                    cairn_last_error());
        fail();
    }
    json_t *p = NULL;
    if (payload != NULL) {
        json_error_t jerr;
        p = json_loads(payload, 0, &jerr);
        if (p == NULL) {
            print_error("payload %s: %s\n", payload, jerr.text);
            fail();
        }
    }
    bool r = filter_match(f, p);
    json_decref(p);
    cairn_filter_free(f);
    return r;
}

#define MATCH(f, p) assert_true(matches((f), (p)))
#define NO_MATCH(f, p) assert_false(matches((f), (p)))

/* The filter must be refused with CAIRN_EFILTER and a message containing
 * `want` (the path and the complaint). */
static void expect_error_(const char *filter, size_t len, const char *want,
                          const char *file, int line) {
    cairn_filter *f = (cairn_filter *)(uintptr_t)1; /* must be reset to NULL */
    cairn_status st = cairn_filter_parse(filter, len, &f);
    const char *msg = cairn_last_error();
    if (st != CAIRN_EFILTER || f != NULL || strstr(msg, want) == NULL ||
        strncmp(msg, "invalid filter", 14) != 0) {
        print_error("%s:%d: filter %.*s\n  status %s, message \"%s\"\n  wanted "
                    "CAIRN_EFILTER and \"%s\"\n",
                    file, line, (int)len, filter, cairn_status_name(st), msg, want);
        cairn_filter_free(st == CAIRN_OK ? f : NULL);
        fail();
    }
}
#define EXPECT_ERROR(f, want) expect_error_((f), strlen(f), (want), __FILE__, __LINE__)

/* ------------------------------------------------------------------ */

static void test_empty_filter(void **state) {
    MATCH("{}", NULL);
    MATCH("{}", "{}");
    MATCH("{}", "{\"a\": 1}");
    MATCH("{\"must\": [], \"should\": [], \"must_not\": []}", "{\"a\": 1}");
    MATCH("{\"should\": []}", NULL);
    MATCH("  {\n} \n", "{\"a\": 1}"); /* whitespace around the object */
    assert_true(filter_match(NULL, NULL)); /* no filter */
    cairn_filter_free(NULL);              /* no-op */
}

static void test_match_string(void **state) {
    const char *f = "{\"must\": [{\"key\": \"color\", \"match\": {\"value\": \"red\"}}]}";
    MATCH(f, "{\"color\": \"red\"}");
    MATCH(f, "{\"color\": \"red\", \"size\": 3}");
    NO_MATCH(f, "{\"color\": \"blue\"}");
    NO_MATCH(f, "{\"color\": \"Red\"}");
    NO_MATCH(f, "{\"color\": \"red \"}");
    NO_MATCH(f, "{\"color\": \"re\"}");
    NO_MATCH(f, "{\"colour\": \"red\"}");
    NO_MATCH(f, "{}");
    NO_MATCH(f, NULL);
    /* Type mismatches never match. */
    NO_MATCH(f, "{\"color\": 7}");
    NO_MATCH(f, "{\"color\": true}");
    NO_MATCH(f, "{\"color\": null}");
    NO_MATCH(f, "{\"color\": [\"red\"]}");
    NO_MATCH(f, "{\"color\": {\"red\": 1}}");
    /* Empty and non-ASCII strings. */
    MATCH("{\"must\": [{\"key\": \"s\", \"match\": {\"value\": \"\"}}]}", "{\"s\": \"\"}");
    NO_MATCH("{\"must\": [{\"key\": \"s\", \"match\": {\"value\": \"\"}}]}",
             "{\"s\": \" \"}");
    MATCH("{\"must\": [{\"key\": \"s\", \"match\": {\"value\": \"caf\\u00e9\"}}]}",
          "{\"s\": \"café\"}");
    /* Non-ASCII keys. */
    MATCH("{\"must\": [{\"key\": \"ключ\", \"match\": {\"value\": \"x\"}}]}",
          "{\"ключ\": \"x\"}");
}

static void test_match_integer(void **state) {
    const char *f = "{\"must\": [{\"key\": \"n\", \"match\": {\"value\": 7}}]}";
    MATCH(f, "{\"n\": 7}");
    NO_MATCH(f, "{\"n\": 8}");
    NO_MATCH(f, "{\"n\": -7}");
    NO_MATCH(f, "{\"n\": 7.0}"); /* strict: an integer matches integers only */
    NO_MATCH(f, "{\"n\": 7.5}");
    NO_MATCH(f, "{\"n\": \"7\"}");
    NO_MATCH(f, "{\"n\": true}");
    NO_MATCH(f, "{}");
    MATCH("{\"must\": [{\"key\": \"n\", \"match\": {\"value\": 0}}]}", "{\"n\": 0}");
    NO_MATCH("{\"must\": [{\"key\": \"n\", \"match\": {\"value\": 0}}]}", "{\"n\": false}");
    NO_MATCH("{\"must\": [{\"key\": \"n\", \"match\": {\"value\": 0}}]}", "{\"n\": null}");
    /* The full int64 range, exactly. */
    const char *big = "{\"must\": [{\"key\": \"n\", \"match\": "
                      "{\"value\": 9223372036854775807}}]}";
    MATCH(big, "{\"n\": 9223372036854775807}");
    NO_MATCH(big, "{\"n\": 9223372036854775806}");
    MATCH("{\"must\": [{\"key\": \"n\", \"match\": {\"value\": -9223372036854775808}}]}",
          "{\"n\": -9223372036854775808}");
}

static void test_match_bool(void **state) {
    const char *t = "{\"must\": [{\"key\": \"ok\", \"match\": {\"value\": true}}]}";
    const char *f = "{\"must\": [{\"key\": \"ok\", \"match\": {\"value\": false}}]}";
    MATCH(t, "{\"ok\": true}");
    NO_MATCH(t, "{\"ok\": false}");
    NO_MATCH(t, "{\"ok\": 1}");
    NO_MATCH(t, "{\"ok\": \"true\"}");
    NO_MATCH(t, "{}");
    MATCH(f, "{\"ok\": false}");
    NO_MATCH(f, "{\"ok\": true}");
    NO_MATCH(f, "{\"ok\": 0}");
    NO_MATCH(f, "{\"ok\": null}");
    NO_MATCH(f, "{}"); /* missing is not false */
}

static void test_range(void **state) {
    const char *gt = "{\"must\": [{\"key\": \"x\", \"range\": {\"gt\": 5}}]}";
    MATCH(gt, "{\"x\": 6}");
    MATCH(gt, "{\"x\": 5.000001}");
    NO_MATCH(gt, "{\"x\": 5}");
    NO_MATCH(gt, "{\"x\": 5.0}");
    NO_MATCH(gt, "{\"x\": 4}");
    const char *gte = "{\"must\": [{\"key\": \"x\", \"range\": {\"gte\": 5}}]}";
    MATCH(gte, "{\"x\": 5}");
    MATCH(gte, "{\"x\": 5.0}");
    NO_MATCH(gte, "{\"x\": 4.999999}");
    const char *lt = "{\"must\": [{\"key\": \"x\", \"range\": {\"lt\": -1.5}}]}";
    MATCH(lt, "{\"x\": -2}");
    MATCH(lt, "{\"x\": -1.6}");
    NO_MATCH(lt, "{\"x\": -1.5}");
    NO_MATCH(lt, "{\"x\": -1}");
    const char *lte = "{\"must\": [{\"key\": \"x\", \"range\": {\"lte\": -1.5}}]}";
    MATCH(lte, "{\"x\": -1.5}");
    NO_MATCH(lte, "{\"x\": -1}");
    MATCH(lte, "{\"x\": -2}");

    /* Several bounds: all must hold. */
    const char *band = "{\"must\": [{\"key\": \"x\", \"range\": "
                       "{\"gte\": 10, \"lt\": 20.5}}]}";
    MATCH(band, "{\"x\": 10}");
    MATCH(band, "{\"x\": 20}");
    MATCH(band, "{\"x\": 20.4}");
    NO_MATCH(band, "{\"x\": 20.5}");
    NO_MATCH(band, "{\"x\": 9.99}");
    const char *all4 = "{\"must\": [{\"key\": \"x\", \"range\": "
                       "{\"gt\": 0, \"gte\": 1, \"lt\": 3, \"lte\": 2}}]}";
    MATCH(all4, "{\"x\": 1}");
    MATCH(all4, "{\"x\": 2}");
    NO_MATCH(all4, "{\"x\": 0.5}");
    NO_MATCH(all4, "{\"x\": 2.5}");
    /* An empty interval is valid and matches nothing. */
    NO_MATCH("{\"must\": [{\"key\": \"x\", \"range\": {\"gt\": 5, \"lt\": 3}}]}",
             "{\"x\": 4}");

    /* Non-numbers and missing fields never hold. */
    NO_MATCH(gte, "{\"x\": \"6\"}");
    NO_MATCH(gte, "{\"x\": true}");
    NO_MATCH(gte, "{\"x\": null}");
    NO_MATCH(gte, "{\"x\": [6]}");
    NO_MATCH(gte, "{\"x\": {\"y\": 6}}");
    NO_MATCH(gte, "{}");
    NO_MATCH(gte, NULL);

    /* Integer vs real comparisons are exact beyond 2^53. */
    const char *b53 = "{\"must\": [{\"key\": \"x\", \"range\": "
                      "{\"gt\": 9007199254740992}}]}"; /* 2^53 */
    MATCH(b53, "{\"x\": 9007199254740993}");
    NO_MATCH(b53, "{\"x\": 9007199254740992}");
    const char *r53 = "{\"must\": [{\"key\": \"x\", \"range\": "
                      "{\"gt\": 9007199254740992.0}}]}"; /* real 2^53 */
    MATCH(r53, "{\"x\": 9007199254740993}");
    NO_MATCH(r53, "{\"x\": 9007199254740992}");
    const char *rbig = "{\"must\": [{\"key\": \"x\", \"range\": {\"lt\": 1e300}}]}";
    MATCH(rbig, "{\"x\": 9223372036854775807}");
    const char *rneg = "{\"must\": [{\"key\": \"x\", \"range\": {\"gt\": -1e300}}]}";
    MATCH(rneg, "{\"x\": -9223372036854775808}");
    const char *i64 = "{\"must\": [{\"key\": \"x\", \"range\": "
                      "{\"gte\": 9223372036854775807}}]}";
    MATCH(i64, "{\"x\": 9223372036854775807}");
    MATCH(i64, "{\"x\": 1e19}");
    NO_MATCH(i64, "{\"x\": 9223372036854775806}");
    NO_MATCH(i64, "{\"x\": 9.2e18}");
    /* 2^63 as a real is above every int64; -2^63 is the smallest int64. */
    const char *r63 = "{\"must\": [{\"key\": \"x\", \"range\": "
                      "{\"lt\": 9223372036854775808.0}}]}";
    MATCH(r63, "{\"x\": 9223372036854775807}");
    MATCH(r63, "{\"x\": -9223372036854775808}");
    const char *rm63 = "{\"must\": [{\"key\": \"x\", \"range\": "
                       "{\"gte\": -9223372036854775808.0}}]}";
    MATCH(rm63, "{\"x\": -9223372036854775808}");
    NO_MATCH("{\"must\": [{\"key\": \"x\", \"range\": "
             "{\"gt\": -9223372036854775808.0}}]}",
             "{\"x\": -9223372036854775808}");
    /* Real payload, integer bound, fractional parts on both signs. */
    const char *neg = "{\"must\": [{\"key\": \"x\", \"range\": {\"gt\": -3, \"lt\": -2}}]}";
    MATCH(neg, "{\"x\": -2.5}");
    NO_MATCH(neg, "{\"x\": -3.0}");
    NO_MATCH(neg, "{\"x\": -2}");
    NO_MATCH(neg, "{\"x\": -3.5}");
}

static void test_clauses(void **state) {
    const char *red = "{\"key\": \"color\", \"match\": {\"value\": \"red\"}}";
    const char *big = "{\"key\": \"size\", \"range\": {\"gte\": 10}}";
    char f[512];

    /* must: all. */
    snprintf(f, sizeof(f), "{\"must\": [%s, %s]}", red, big);
    MATCH(f, "{\"color\": \"red\", \"size\": 10}");
    NO_MATCH(f, "{\"color\": \"red\", \"size\": 9}");
    NO_MATCH(f, "{\"color\": \"blue\", \"size\": 10}");
    NO_MATCH(f, "{\"color\": \"red\"}");

    /* should: at least one. */
    snprintf(f, sizeof(f), "{\"should\": [%s, %s]}", red, big);
    MATCH(f, "{\"color\": \"red\", \"size\": 1}");
    MATCH(f, "{\"color\": \"blue\", \"size\": 11}");
    MATCH(f, "{\"color\": \"red\", \"size\": 11}");
    NO_MATCH(f, "{\"color\": \"blue\", \"size\": 1}");
    NO_MATCH(f, "{}");
    NO_MATCH(f, NULL);

    /* must_not: none. Missing fields make conditions false, so a point
     * without the field passes must_not. */
    snprintf(f, sizeof(f), "{\"must_not\": [%s, %s]}", red, big);
    MATCH(f, "{\"color\": \"blue\", \"size\": 1}");
    NO_MATCH(f, "{\"color\": \"red\", \"size\": 1}");
    NO_MATCH(f, "{\"color\": \"blue\", \"size\": 10}");
    MATCH(f, "{}");
    MATCH(f, NULL);

    /* Combined: must and should and must_not together. */
    snprintf(f, sizeof(f),
             "{\"must\": [%s], \"should\": [%s, {\"key\": \"tag\", \"match\": "
             "{\"value\": \"sale\"}}], \"must_not\": [{\"key\": \"gone\", "
             "\"match\": {\"value\": true}}]}",
             red, big);
    MATCH(f, "{\"color\": \"red\", \"size\": 12}");
    MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\"}");
    MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\", \"gone\": false}");
    NO_MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\", \"gone\": true}");
    NO_MATCH(f, "{\"color\": \"red\", \"size\": 2}");        /* should fails */
    NO_MATCH(f, "{\"color\": \"blue\", \"size\": 12}");      /* must fails */

    /* Member order in the object does not matter. */
    snprintf(f, sizeof(f), "{\"must_not\": [%s], \"must\": [%s]}", big, red);
    MATCH(f, "{\"color\": \"red\", \"size\": 2}");
    NO_MATCH(f, "{\"color\": \"red\", \"size\": 20}");
}

static void test_nested(void **state) {
    /* color == red AND (size >= 10 OR tag == sale) AND NOT (a AND b). */
    const char *f =
        "{\"must\": ["
        "  {\"key\": \"color\", \"match\": {\"value\": \"red\"}},"
        "  {\"should\": ["
        "    {\"key\": \"size\", \"range\": {\"gte\": 10}},"
        "    {\"key\": \"tag\", \"match\": {\"value\": \"sale\"}}]}],"
        " \"must_not\": ["
        "  {\"must\": ["
        "    {\"key\": \"a\", \"match\": {\"value\": 1}},"
        "    {\"key\": \"b\", \"match\": {\"value\": 1}}]}]}";
    MATCH(f, "{\"color\": \"red\", \"size\": 10}");
    MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\"}");
    MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\", \"a\": 1}");
    MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\", \"b\": 1}");
    NO_MATCH(f, "{\"color\": \"red\", \"tag\": \"sale\", \"a\": 1, \"b\": 1}");
    NO_MATCH(f, "{\"color\": \"red\", \"size\": 9}");
    NO_MATCH(f, "{\"color\": \"blue\", \"size\": 10}");

    /* A nested empty filter is true; nested must_not of a missing field. */
    MATCH("{\"must\": [{}]}", NULL);
    NO_MATCH("{\"must_not\": [{}]}", "{\"a\": 1}");
    MATCH("{\"should\": [{\"must_not\": [{\"key\": \"z\", \"match\": {\"value\": 1}}]}]}",
          "{\"a\": 1}");

    /* Deep but allowed nesting: 32 filter objects, the most allowed. */
    char deep[4096];
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"must\": [");
    n += (size_t)snprintf(deep + n, sizeof(deep) - n,
                          "{\"key\": \"a\", \"match\": {\"value\": 1}}");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "]}");
    MATCH(deep, "{\"a\": 1}");
    NO_MATCH(deep, "{\"a\": 2}");
}

static void test_dotted_keys(void **state) {
    const char *f = "{\"must\": [{\"key\": \"a.b.c\", \"match\": {\"value\": \"x\"}}]}";
    MATCH(f, "{\"a\": {\"b\": {\"c\": \"x\"}}}");
    MATCH(f, "{\"a\": {\"b\": {\"c\": \"x\", \"d\": 1}, \"e\": 2}}");
    NO_MATCH(f, "{\"a\": {\"b\": {\"c\": \"y\"}}}");
    NO_MATCH(f, "{\"a\": {\"b\": {}}}");
    NO_MATCH(f, "{\"a\": {\"b\": \"c\"}}");         /* b is not an object */
    NO_MATCH(f, "{\"a\": {\"b\": [{\"c\": \"x\"}]}}"); /* arrays are not walked */
    NO_MATCH(f, "{\"a\": 1}");
    NO_MATCH(f, "{\"a.b.c\": \"x\"}"); /* dots always separate segments */
    NO_MATCH(f, "{}");
    NO_MATCH(f, NULL);
    const char *r = "{\"must\": [{\"key\": \"m.score\", \"range\": {\"gt\": 0.5}}]}";
    MATCH(r, "{\"m\": {\"score\": 0.75}}");
    NO_MATCH(r, "{\"m\": {\"score\": 0.25}}");
    NO_MATCH(r, "{\"score\": 0.75}");
    /* An object value at the end of a path matches nothing. */
    NO_MATCH("{\"must\": [{\"key\": \"a\", \"range\": {\"gt\": 0}}]}",
             "{\"a\": {\"b\": 1}}");
}

static void test_payload_not_object(void **state) {
    const char *f = "{\"must\": [{\"key\": \"a\", \"match\": {\"value\": 1}}]}";
    NO_MATCH(f, "[1, 2]");
    MATCH("{\"must_not\": [{\"key\": \"a\", \"match\": {\"value\": 1}}]}", "[1]");
}

/* Parsed filters are independent of the input buffer. */
static void test_independent_of_input(void **state) {
    char *text = strdup("{\"must\": [{\"key\": \"k\", \"match\": {\"value\": \"v\"}}]}");
    assert_non_null(text);
    cairn_filter *f = NULL;
    assert_int_equal(cairn_filter_parse(text, strlen(text), &f), CAIRN_OK);
    memset(text, 'x', strlen(text));
    free(text);
    json_t *p = json_pack("{s:s}", "k", "v");
    assert_true(filter_match(f, p));
    json_decref(p);
    cairn_filter_free(f);

    /* A success leaves no stale message behind. */
    assert_int_equal(cairn_filter_parse("[", 1, &f), CAIRN_EFILTER);
    assert_true(cairn_last_error()[0] != '\0');
    assert_int_equal(cairn_filter_parse("{}", 2, &f), CAIRN_OK);
    assert_string_equal(cairn_last_error(), "");
    cairn_filter_free(f);

    /* len bounds the input: trailing bytes past len are not read. */
    const char *s = "{}garbage";
    assert_int_equal(cairn_filter_parse(s, 2, &f), CAIRN_OK);
    cairn_filter_free(f);
}

static void test_bad_arguments(void **state) {
    cairn_filter *f = NULL;
    assert_int_equal(cairn_filter_parse("{}", 2, NULL), CAIRN_EINVAL);
    assert_int_equal(cairn_filter_parse(NULL, 0, &f), CAIRN_EINVAL);
    assert_null(f);
}

static void test_errors_syntax(void **state) {
    EXPECT_ERROR("", "could not parse JSON at offset");
    EXPECT_ERROR("{", "could not parse JSON");
    EXPECT_ERROR("{\"must\": [}", "could not parse JSON");
    EXPECT_ERROR("{} {}", "could not parse JSON");
    EXPECT_ERROR("{\"must\": [], \"must\": []}", "duplicate");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"key\": \"b\", "
                 "\"match\": {\"value\": 1}}]}",
                 "duplicate");
    EXPECT_ERROR("\"must\"", "could not parse JSON");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": "
                 "99999999999999999999}}]}",
                 "could not parse JSON"); /* integer overflow */
    /* An embedded NUL inside len. */
    expect_error_("{}\0", 3, "could not parse JSON", __FILE__, __LINE__);
}

static void test_errors_structure(void **state) {
    /* Top level. */
    EXPECT_ERROR("[]", "invalid filter at top level: expected a JSON object, got array");
    EXPECT_ERROR("{\"must\": [], \"mus\": []}",
                 "invalid filter at top level: unknown key \"mus\"");
    EXPECT_ERROR("{\"must\": {}}",
                 "invalid filter at top level: expected an array for \"must\", got object");
    EXPECT_ERROR("{\"should\": null}",
                 "invalid filter at top level: expected an array for \"should\", got null");
    EXPECT_ERROR("{\"must_not\": \"x\"}",
                 "invalid filter at top level: expected an array for \"must_not\", got "
                 "string");
    /* Elements. */
    EXPECT_ERROR("{\"must\": [1]}", "invalid filter at must[0]: expected an object, got "
                                    "integer");
    EXPECT_ERROR("{\"must\": [{}, \"a\"]}", "invalid filter at must[1]: expected an "
                                            "object, got string");
    EXPECT_ERROR("{\"must_not\": [{}, {}, []]}", "invalid filter at must_not[2]: expected "
                                                 "an object, got array");
    /* Unknown key in a nested filter. */
    EXPECT_ERROR("{\"should\": [{\"must\": []}, {\"any\": []}]}",
                 "invalid filter at should[1]: unknown key \"any\" (expected \"must\", "
                 "\"should\" or \"must_not\")");
    /* Depth. */
    char deep[4096];
    size_t n = 0;
    for (int i = 0; i < 33; i++) /* one more than allowed */
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"must\": [");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "]}");
    EXPECT_ERROR(deep, "nested deeper than 32 levels");
    EXPECT_ERROR(deep, "invalid filter at must[0].must[0].must[0]");
}

static void test_errors_condition(void **state) {
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\"}]}",
                 "invalid filter at must[0]: missing \"match\" or \"range\"");
    EXPECT_ERROR("{\"must\": [{\"match\": {\"value\": 1}}]}",
                 "invalid filter at must[0]: missing \"key\"");
    EXPECT_ERROR("{\"must\": [{\"range\": {\"gt\": 1}}]}",
                 "invalid filter at must[0]: missing \"key\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": 1}, "
                 "\"range\": {\"gt\": 1}}]}",
                 "invalid filter at must[0]: expected one of \"match\" or \"range\", "
                 "got both");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": 1}, \"x\": 1}]}",
                 "invalid filter at must[0]: unknown key \"x\" in a condition");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": 1}, "
                 "\"must\": []}]}",
                 "invalid filter at must[0]: unknown key \"must\" in a condition");
    /* key */
    EXPECT_ERROR("{\"should\": [{\"key\": 5, \"match\": {\"value\": 1}}]}",
                 "invalid filter at should[0]: expected a string for \"key\", got "
                 "integer");
    EXPECT_ERROR("{\"should\": [{\"key\": null, \"match\": {\"value\": 1}}]}",
                 "invalid filter at should[0]: expected a string for \"key\", got null");
    EXPECT_ERROR("{\"must\": [{\"key\": \"\", \"match\": {\"value\": 1}}]}",
                 "invalid filter at must[0]: expected a non-empty field name for "
                 "\"key\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a..b\", \"match\": {\"value\": 1}}]}",
                 "invalid filter at must[0]: empty path segment in \"key\" \"a..b\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \".a\", \"match\": {\"value\": 1}}]}",
                 "empty path segment");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a.\", \"match\": {\"value\": 1}}]}",
                 "empty path segment");
    EXPECT_ERROR("{\"must\": [{\"key\": \".\", \"match\": {\"value\": 1}}]}",
                 "empty path segment");
}

static void test_errors_match(void **state) {
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": 1}]}",
                 "invalid filter at must[0].match: expected an object, got integer");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {}}]}",
                 "invalid filter at must[0].match: missing \"value\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": 1, \"any\": 2}}]}",
                 "invalid filter at must[0].match: unknown key \"any\" (expected "
                 "\"value\")");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": 1.5}}]}",
                 "invalid filter at must[0].match: expected a string, integer or "
                 "boolean for \"value\", got real");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": null}}]}",
                 "got null");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": [1]}}]}",
                 "got array");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"match\": {\"value\": {}}}]}",
                 "got object");
    /* Deep path: the position of every enclosing clause is named. */
    EXPECT_ERROR("{\"must\": [{}, {\"should\": [{\"key\": \"a\", \"match\": {\"value\": "
                 "1}}, {\"must_not\": [{\"key\": \"b\", \"match\": {\"valu\": 1}}]}]}]}",
                 "invalid filter at must[1].should[1].must_not[0].match: unknown key "
                 "\"valu\"");
}

static void test_errors_range(void **state) {
    EXPECT_ERROR("{\"must\": [{}, {\"key\": \"a\", \"range\": {\"gte\": \"1\"}}]}",
                 "invalid filter at must[1].range: expected a number for \"gte\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": {\"gt\": true}}]}",
                 "invalid filter at must[0].range: expected a number for \"gt\", got "
                 "boolean");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": {\"lt\": null}}]}",
                 "invalid filter at must[0].range: expected a number for \"lt\", got null");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": {\"gt\": 1, \"lte\": [2]}}]}",
                 "invalid filter at must[0].range: expected a number for \"lte\", got "
                 "array");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": {}}]}",
                 "invalid filter at must[0].range: expected at least one of \"gt\", "
                 "\"gte\", \"lt\" or \"lte\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": {\"ge\": 1}}]}",
                 "invalid filter at must[0].range: unknown key \"ge\"");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": [1, 2]}]}",
                 "invalid filter at must[0].range: expected an object, got array");
    EXPECT_ERROR("{\"must\": [{\"key\": \"a\", \"range\": {\"gt\": 1e999}}]}",
                 "could not parse JSON"); /* real overflow */
}

/* Names from the input are cut and sanitised in messages. */
static void test_error_message_hygiene(void **state) {
    EXPECT_ERROR("{\"m\\\"u\\nst\": []}", "unknown key \"m?u?st\"");
    char f[512];
    snprintf(f, sizeof(f), "{\"%0200d\": []}", 0);
    EXPECT_ERROR(f, "unknown key \"000000000000000000000000000000000000000000000000"
                    "...\"");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_filter),
        cmocka_unit_test(test_match_string),
        cmocka_unit_test(test_match_integer),
        cmocka_unit_test(test_match_bool),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_clauses),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_dotted_keys),
        cmocka_unit_test(test_payload_not_object),
        cmocka_unit_test(test_independent_of_input),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_errors_syntax),
        cmocka_unit_test(test_errors_structure),
        cmocka_unit_test(test_errors_condition),
        cmocka_unit_test(test_errors_match),
        cmocka_unit_test(test_errors_range),
        cmocka_unit_test(test_error_message_hygiene),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
