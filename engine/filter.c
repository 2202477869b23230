/*
 * filter.c — payload filters: parsing the filter JSON into an immutable tree
 * and evaluating it against a point's payload.
 *
 * Grammar (include/cairn.h):
 *
 *   FILTER = {"must": [COND...], "should": [COND...], "must_not": [COND...]}
 *            (each member optional; {} matches every point)
 *   COND   = {"key": KEY, "match": {"value": STRING | INTEGER | BOOLEAN}}
 *          | {"key": KEY, "range": {"gt"|"gte"|"lt"|"lte": NUMBER, ...}}
 *          | FILTER                      (a nested filter on the same point)
 *   KEY    = a field name, or a dotted path "a.b.c" into nested objects
 *
 * An object in a clause is a field condition when it has any of the members
 * "key", "match", "range", and a nested filter otherwise.
 *
 * Semantics:
 *   must      every condition holds
 *   should    at least one condition holds (no constraint when empty)
 *   must_not  no condition holds
 *   A field condition is false when the field is missing (no payload, the
 *   payload is not an object, or a path segment is absent or not an object).
 *   Dots always separate path segments: a top-level field whose name
 *   contains a '.' cannot be addressed.
 *   match is strict on type: a string matches equal strings (byte for byte),
 *   an integer matches equal JSON integers only (not reals such as 7.0), a
 *   boolean matches the same boolean. Arrays and objects never match.
 *   range holds for integer and real values within every given bound;
 *   comparisons between integers and reals are exact (no rounding of large
 *   integers through double). Other types never hold.
 *
 * Errors: anything outside the grammar — a syntax error, an unknown or
 * duplicate member, a wrong type, an empty range, an empty key or key
 * segment, nesting deeper than FILTER_MAX_DEPTH — is CAIRN_EFILTER, with a
 * message naming the JSON path of the object at fault and, for a bad member
 * value, the member:
 *     invalid filter at must[1].range: expected a number for "gte", got string
 *     invalid filter at top level: unknown key "mus" (expected "must", ...)
 *
 * A parsed filter holds no jansson objects: it is plain immutable memory and
 * may be evaluated from many threads at once.
 */
#include "engine/filter.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

#define FILTER_MAX_DEPTH 32
#define FILTER_PATH_MAX 1024

enum cond_kind {
    COND_MATCH_STR,
    COND_MATCH_INT,
    COND_MATCH_BOOL,
    COND_RANGE,
    COND_FILTER
};

/* A JSON number kept exactly as parsed. */
struct num {
    bool is_int;
    json_int_t i;
    double d;
};

enum { BOUND_GT, BOUND_GTE, BOUND_LT, BOUND_LTE, BOUND_COUNT };
static const char *const bound_names[BOUND_COUNT] = {"gt", "gte", "lt", "lte"};

struct cond {
    enum cond_kind kind;
    char *key;     /* path segments, each NUL-terminated, back to back */
    uint32_t nseg; /* number of segments in key */
    union {
        struct {
            char *s;
            size_t len;
        } str;
        json_int_t i;
        bool b;
        struct {
            unsigned has; /* bit BOUND_x set when that bound is given */
            struct num bound[BOUND_COUNT];
        } range;
        struct cairn_filter *sub;
    } u;
};

struct clause {
    struct cond *conds;
    size_t n;
};

struct cairn_filter {
    struct clause must;
    struct clause should;
    struct clause must_not;
};

/* ------------------------------------------------------------------ */
/* Freeing                                                             */
/* ------------------------------------------------------------------ */

static void filter_destroy(struct cairn_filter *f);

static void clause_destroy(struct clause *cl) {
    for (size_t i = 0; i < cl->n; i++) {
        struct cond *c = &cl->conds[i];
        free(c->key);
        if (c->kind == COND_MATCH_STR)
            free(c->u.str.s);
        else if (c->kind == COND_FILTER)
            filter_destroy(c->u.sub);
    }
    free(cl->conds);
}

static void filter_destroy(struct cairn_filter *f) {
    if (f == NULL)
        return;
    clause_destroy(&f->must);
    clause_destroy(&f->should);
    clause_destroy(&f->must_not);
    free(f);
}

void cairn_filter_free(cairn_filter *filter) { filter_destroy(filter); }

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

struct pctx {
    char path[FILTER_PATH_MAX]; /* "must[1].should[0]", "" at top level */
    size_t len;
    int depth;
};

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* Appends to the path; a full buffer ends the path with "..." (messages only
 * need the start of an absurdly deep path). */
static size_t path_push(struct pctx *c, const char *fmt, ...) CAIRN_PRINTF(2, 3);
static size_t path_push(struct pctx *c, const char *fmt, ...) {
    size_t mark = c->len;
    size_t room = sizeof(c->path) - c->len;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(c->path + c->len, room, fmt, ap);
    va_end(ap);
    if (w < 0)
        w = 0;
    if ((size_t)w >= room) {
        memcpy(c->path + sizeof(c->path) - 4, "...", 4);
        c->len = sizeof(c->path) - 1;
    } else {
        c->len += (size_t)w;
    }
    return mark;
}

static void path_pop(struct pctx *c, size_t mark) {
    c->len = mark;
    c->path[mark] = '\0';
}

/* Member m of the current object: "m" at top level, ".m" below it. */
static size_t path_member(struct pctx *c, const char *m) {
    return path_push(c, c->len == 0 ? "%s" : ".%s", m);
}

static cairn_status perr(const struct pctx *c, const char *fmt, ...)
    CAIRN_PRINTF(2, 3);
static cairn_status perr(const struct pctx *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->len == 0)
        return cerr_set(CAIRN_EFILTER, "invalid filter at top level: %s", msg);
    return cerr_set(CAIRN_EFILTER, "invalid filter at %s: %s", c->path, msg);
}

static cairn_status oom(void) {
    return cerr_set(CAIRN_ENOMEM, "could not allocate filter: out of memory");
}

/* Copies a user-supplied name for a message: at most 48 bytes, with quotes,
 * backslashes and control bytes replaced by '?'. */
static const char *quoted(char dst[64], const char *src) {
    size_t i = 0;
    for (; src[i] != '\0' && i < 48; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?'
                                                                       : (char)ch;
    }
    if (src[i] != '\0') {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
    return dst;
}

static cairn_status parse_filter(struct pctx *c, const json_t *obj,
                                 struct cairn_filter **out);

static cairn_status parse_key(struct pctx *c, const json_t *v, struct cond *cond) {
    if (!json_is_string(v))
        return perr(c, "expected a string for \"key\", got %s", type_name(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return perr(c, "expected a non-empty field name for \"key\"");
    char q[64];
    if (s[0] == '.' || s[len - 1] == '.' || strstr(s, "..") != NULL)
        return perr(c, "empty path segment in \"key\" \"%s\"", quoted(q, s));
    cond->key = malloc(len + 1);
    if (cond->key == NULL)
        return oom();
    cond->nseg = 1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            cond->key[i] = '\0';
            cond->nseg++;
        } else {
            cond->key[i] = s[i];
        }
    }
    cond->key[len] = '\0';
    return CAIRN_OK;
}

static cairn_status parse_match(struct pctx *c, const json_t *m, struct cond *cond) {
    if (!json_is_object(m))
        return perr(c, "expected an object, got %s", type_name(m));
    const char *name;
    const json_t *v;
    char q[64];
    json_object_foreach((json_t *)m, name, v) {
        if (strcmp(name, "value") != 0)
            return perr(c, "unknown key \"%s\" (expected \"value\")", quoted(q, name));
    }
    v = json_object_get(m, "value");
    if (v == NULL)
        return perr(c, "missing \"value\"");
    switch (json_typeof(v)) {
    case JSON_STRING: {
        size_t len = json_string_length(v);
        cond->u.str.s = malloc(len + 1);
        if (cond->u.str.s == NULL)
            return oom();
        memcpy(cond->u.str.s, json_string_value(v), len + 1);
        cond->u.str.len = len;
        cond->kind = COND_MATCH_STR; /* set last: the string is owned now */
        return CAIRN_OK;
    }
    case JSON_INTEGER:
        cond->kind = COND_MATCH_INT;
        cond->u.i = json_integer_value(v);
        return CAIRN_OK;
    case JSON_TRUE:
    case JSON_FALSE:
        cond->kind = COND_MATCH_BOOL;
        cond->u.b = json_is_true(v);
        return CAIRN_OK;
    default:
        return perr(c, "expected a string, integer or boolean for \"value\", got %s",
                    type_name(v));
    }
}

static cairn_status parse_range(struct pctx *c, const json_t *r, struct cond *cond) {
    if (!json_is_object(r))
        return perr(c, "expected an object, got %s", type_name(r));
    cond->kind = COND_RANGE;
    cond->u.range.has = 0;
    const char *name;
    const json_t *v;
    char q[64];
    json_object_foreach((json_t *)r, name, v) {
        int b = 0;
        while (b < BOUND_COUNT && strcmp(name, bound_names[b]) != 0)
            b++;
        if (b == BOUND_COUNT)
            return perr(c,
                        "unknown key \"%s\" (expected \"gt\", \"gte\", \"lt\" or "
                        "\"lte\")",
                        quoted(q, name));
        struct num *n = &cond->u.range.bound[b];
        if (json_is_integer(v)) {
            n->is_int = true;
            n->i = json_integer_value(v);
            n->d = (double)n->i;
        } else if (json_is_real(v)) {
            n->is_int = false;
            n->d = json_real_value(v);
            n->i = 0;
        } else {
            return perr(c, "expected a number for \"%s\", got %s", bound_names[b],
                        type_name(v));
        }
        cond->u.range.has |= 1u << b;
    }
    if (cond->u.range.has == 0)
        return perr(c, "expected at least one of \"gt\", \"gte\", \"lt\" or \"lte\"");
    return CAIRN_OK;
}

static cairn_status parse_field_cond(struct pctx *c, const json_t *obj,
                                     struct cond *cond) {
    const char *name;
    const json_t *v;
    char q[64];
    json_object_foreach((json_t *)obj, name, v) {
        if (strcmp(name, "key") != 0 && strcmp(name, "match") != 0 &&
            strcmp(name, "range") != 0)
            return perr(c,
                        "unknown key \"%s\" in a condition (expected \"key\", "
                        "\"match\" or \"range\")",
                        quoted(q, name));
    }
    const json_t *key = json_object_get(obj, "key");
    const json_t *match = json_object_get(obj, "match");
    const json_t *range = json_object_get(obj, "range");
    if (key == NULL)
        return perr(c, "missing \"key\"");
    if (match != NULL && range != NULL)
        return perr(c, "expected one of \"match\" or \"range\", got both");
    if (match == NULL && range == NULL)
        return perr(c, "missing \"match\" or \"range\"");

    cairn_status st = parse_key(c, key, cond);
    if (st != CAIRN_OK)
        return st;
    size_t mark = path_member(c, match != NULL ? "match" : "range");
    st = match != NULL ? parse_match(c, match, cond) : parse_range(c, range, cond);
    path_pop(c, mark);
    return st;
}

static cairn_status parse_cond(struct pctx *c, const json_t *v, struct cond *cond) {
    if (!json_is_object(v))
        return perr(c, "expected an object, got %s", type_name(v));
    if (json_object_get(v, "key") != NULL || json_object_get(v, "match") != NULL ||
        json_object_get(v, "range") != NULL)
        return parse_field_cond(c, v, cond);
    cond->kind = COND_FILTER;
    cond->u.sub = NULL;
    return parse_filter(c, v, &cond->u.sub);
}

static cairn_status parse_clause(struct pctx *c, const char *name, const json_t *arr,
                                 struct clause *cl) {
    if (!json_is_array(arr))
        return perr(c, "expected an array for \"%s\", got %s", name, type_name(arr));
    size_t n = json_array_size(arr);
    if (n == 0)
        return CAIRN_OK;
    cl->conds = calloc(n, sizeof(*cl->conds));
    if (cl->conds == NULL)
        return oom();
    for (size_t i = 0; i < n; i++) {
        /* Counted before parsing so a half-built condition is freed too;
         * calloc left it as an empty COND_MATCH_STR with NULL pointers. */
        cl->n = i + 1;
        size_t mark = path_push(c, c->len == 0 ? "%s[%zu]" : ".%s[%zu]", name, i);
        cairn_status st = parse_cond(c, json_array_get(arr, i), &cl->conds[i]);
        path_pop(c, mark);
        if (st != CAIRN_OK)
            return st;
    }
    return CAIRN_OK;
}

static cairn_status parse_filter(struct pctx *c, const json_t *obj,
                                 struct cairn_filter **out) {
    if (!json_is_object(obj))
        return perr(c, "expected a JSON object, got %s", type_name(obj));
    if (c->depth >= FILTER_MAX_DEPTH)
        return perr(c, "filters nested deeper than %d levels", FILTER_MAX_DEPTH);

    const char *name;
    const json_t *v;
    char q[64];
    json_object_foreach((json_t *)obj, name, v) {
        if (strcmp(name, "must") != 0 && strcmp(name, "should") != 0 &&
            strcmp(name, "must_not") != 0)
            return perr(c,
                        "unknown key \"%s\" (expected \"must\", \"should\" or "
                        "\"must_not\")",
                        quoted(q, name));
    }

    struct cairn_filter *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return oom();
    *out = f;
    static const char *const names[3] = {"must", "should", "must_not"};
    struct clause *clauses[3] = {&f->must, &f->should, &f->must_not};
    c->depth++;
    cairn_status st = CAIRN_OK;
    for (int i = 0; i < 3 && st == CAIRN_OK; i++) {
        const json_t *arr = json_object_get(obj, names[i]);
        if (arr != NULL)
            st = parse_clause(c, names[i], arr, clauses[i]);
    }
    c->depth--;
    return st;
}

cairn_status cairn_filter_parse(const char *json, size_t len, cairn_filter **out) {
    cerr_clear();
    if (out == NULL)
        return cerr_set(CAIRN_EINVAL, "could not parse filter: out is NULL");
    *out = NULL;
    if (json == NULL)
        return cerr_set(CAIRN_EINVAL, "could not parse filter: json is NULL");

    json_t *root = NULL;
    struct cjson_error je = {0, NULL};
    cairn_status pst = cjson_parse_object(json, len, &root, &je);
    if (pst == CAIRN_ENOMEM) return oom();
    if (pst && json[je.offset] == '[' && !strcmp(je.what, "not a JSON object"))
        return cerr_set(CAIRN_EFILTER,
                        "invalid filter at top level: expected a JSON object, got array");
    if (pst) {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < je.offset && i < len; i++, col++)
            if (json[i] == '\n') {
                line++;
                col = 0;
            }
        return cerr_set(CAIRN_EFILTER,
                        "invalid filter: could not parse JSON at offset %zu (line "
                        "%zu, column %zu): %s",
                        je.offset, line, col, je.what);
    }

    struct pctx *c = malloc(sizeof(*c));
    if (c == NULL) {
        json_decref(root);
        return oom();
    }
    c->path[0] = '\0';
    c->len = 0;
    c->depth = 0;

    struct cairn_filter *f = NULL;
    cairn_status st = parse_filter(c, root, &f);
    free(c);
    json_decref(root);
    if (st != CAIRN_OK) {
        filter_destroy(f);
        return st;
    }
    *out = f;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */
/* ------------------------------------------------------------------ */

static const json_t *lookup(const json_t *payload, const struct cond *cond) {
    const json_t *v = payload;
    const char *seg = cond->key;
    for (uint32_t i = 0; i < cond->nseg; i++) {
        if (v == NULL || !json_is_object(v))
            return NULL;
        v = json_object_get(v, seg);
        seg += strlen(seg) + 1;
    }
    return v;
}

/* Exact sign of (i - d) for a finite double d. */
static int cmp_int_real(json_int_t i, double d) {
    if (d >= 9223372036854775808.0) /* 2^63: above every int64 */
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double t = trunc(d); /* exactly representable in int64 now */
    json_int_t ti = (json_int_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

/* Sign of (a - b); both are finite. */
static int cmp_num(const struct num *a, const struct num *b) {
    if (a->is_int && b->is_int)
        return a->i < b->i ? -1 : a->i > b->i;
    if (a->is_int)
        return cmp_int_real(a->i, b->d);
    if (b->is_int)
        return -cmp_int_real(b->i, a->d);
    return a->d < b->d ? -1 : a->d > b->d;
}

static bool range_holds(const struct cond *cond, const json_t *v) {
    struct num x;
    if (json_is_integer(v)) {
        x.is_int = true;
        x.i = json_integer_value(v);
        x.d = 0.0;
    } else if (json_is_real(v)) {
        x.is_int = false;
        x.i = 0;
        x.d = json_real_value(v);
        if (!isfinite(x.d))
            return false;
    } else {
        return false;
    }
    unsigned has = cond->u.range.has;
    const struct num *b = cond->u.range.bound;
    if ((has & (1u << BOUND_GT)) && !(cmp_num(&x, &b[BOUND_GT]) > 0))
        return false;
    if ((has & (1u << BOUND_GTE)) && !(cmp_num(&x, &b[BOUND_GTE]) >= 0))
        return false;
    if ((has & (1u << BOUND_LT)) && !(cmp_num(&x, &b[BOUND_LT]) < 0))
        return false;
    if ((has & (1u << BOUND_LTE)) && !(cmp_num(&x, &b[BOUND_LTE]) <= 0))
        return false;
    return true;
}

static bool cond_holds(const struct cond *cond, const json_t *payload) {
    if (cond->kind == COND_FILTER)
        return filter_match(cond->u.sub, payload);
    const json_t *v = lookup(payload, cond);
    if (v == NULL)
        return false;
    switch (cond->kind) {
    case COND_MATCH_STR:
        return json_is_string(v) && json_string_length(v) == cond->u.str.len &&
               memcmp(json_string_value(v), cond->u.str.s, cond->u.str.len) == 0;
    case COND_MATCH_INT:
        return json_is_integer(v) && json_integer_value(v) == cond->u.i;
    case COND_MATCH_BOOL:
        return json_is_boolean(v) && json_is_true(v) == cond->u.b;
    case COND_RANGE:
        return range_holds(cond, v);
    case COND_FILTER:
        break;
    }
    return false;
}

bool filter_match(const cairn_filter *f, const json_t *payload) {
    if (f == NULL)
        return true;
    for (size_t i = 0; i < f->must.n; i++)
        if (!cond_holds(&f->must.conds[i], payload))
            return false;
    for (size_t i = 0; i < f->must_not.n; i++)
        if (cond_holds(&f->must_not.conds[i], payload))
            return false;
    if (f->should.n == 0)
        return true;
    for (size_t i = 0; i < f->should.n; i++)
        if (cond_holds(&f->should.conds[i], payload))
            return true;
    return false;
}
