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

#define CJSON_MAX_DEPTH 512

struct cjson_error {
    size_t offset;    /* byte offset of the fault */
    const char *what; /* static text */
};

/* true if text[0..len) is one JSON value, an object at the top level, with
 * optional surrounding whitespace. On false, *err says where and why. */
bool cjson_validate_object(const char *text, size_t len, struct cjson_error *err);

#endif
