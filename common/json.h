/*
 * json.h — a strict, allocation-light JSON validator for the commit path.
 *
 * Payloads are validated on every upsert and on replay; building a tree for
 * each (jansson) cost ~45% of batch ingest. The validator checks RFC 8259
 * syntax and accepts exactly what jansson's json_loadb(JSON_REJECT_DUPLICATES)
 * accepts as an object, except that it is stricter on raw NUL bytes between
 * tokens (jansson skips them) and on depth; so a tree can always be built
 * later, lazily, for filters (fuzz/json_payload.c checks this):
 *   - UTF-8 must be well-formed (no overlongs, surrogates, > U+10FFFF);
 *   - \u escapes: no \u0000, surrogates only as a valid high+low pair;
 *   - integers (no fraction/exponent) must fit int64; reals must be finite;
 *   - no duplicate key within one object (compared after unescaping);
 *   - nesting depth at most CJSON_MAX_DEPTH.
 */
#ifndef CAIRN_COMMON_JSON_H
#define CAIRN_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cairn.h"

#define CJSON_MAX_DEPTH 512

struct cjson_error {
    size_t offset;    /* byte offset of the fault */
    const char *what; /* static text */
};

/* true if text[0..len) is one JSON value, an object at the top level, with
 * optional surrounding whitespace. On false, *err says where and why. */
bool cjson_validate_object(const char *text, size_t len, struct cjson_error *err);

/* The jansson tree of text[0..len), one JSON object as
 * cjson_validate_object accepts it (duplicate keys refused): CAIRN_OK and
 * *out; CAIRN_EFORMAT with *err (may be NULL) saying where and why; or
 * CAIRN_ENOMEM. The text need not be NUL-terminated. Use it, not
 * json_loadb, wherever memory may run out: jansson's lexer ignores a
 * failed allocation (jansson issue #362) and may then return a tree a
 * character short, read past its buffer or fail an assertion; this builds
 * the tree with jansson's value constructors only, which do report it.
 * Sets the thread's message (callers add what the text is). */
cairn_status cjson_parse_object(const char *text, size_t len, json_t **out,
                                struct cjson_error *err);

#endif
