/*
 * json.c — strict JSON validation without building a tree, and a tree
 * builder over validated text (see json.h).
 *
 * A recursive-descent scanner over the bytes. Object keys are kept as spans
 * of the input; an object's keys are checked for duplicates at its end by
 * sorting the spans (keys holding escapes are compared after decoding).
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct scan {
    const char *s;
    size_t n, i;
    struct cjson_error *err;
};

struct keyspan {
    const char *p; /* between the quotes */
    size_t len;
    bool escaped;
};

static bool fail(struct scan *sc, size_t at, const char *what) {
    if (sc->err) {
        sc->err->offset = at;
        sc->err->what = what;
    }
    return false;
}

static inline __attribute__((always_inline)) void skip_ws(struct scan *sc) {
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        sc->i++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(struct scan *sc, size_t at, uint32_t *out) {
    if (at + 4 > sc->n) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(sc->s[at + (size_t)k]);
        if (h < 0) return false;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), 0 if
 * malformed. */
static size_t utf8_seq(const unsigned char *p, size_t avail) {
    unsigned c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (avail < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* The index of the first byte at or after i that a string scan must look
 * at (a quote, a backslash, a control character or a byte >= 0x80), or n.
 * Plain ASCII is most of a payload's strings: SSE2 checks 16 bytes at a
 * time (a restore's replay spent a tenth of its apply here byte by byte). */
#if defined(__SSE2__)
/* Bit k set: byte k of the 16 at p must stop a plain run. */
static inline unsigned stop_mask(const char *p) {
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* signed compare: bytes >= 0x80 are negative, so below 0x20 too */
    __m128i stop = _mm_or_si128(_mm_cmplt_epi8(x, space),
                                _mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                             _mm_cmpeq_epi8(x, bslash)));
    return (unsigned)_mm_movemask_epi8(stop);
}
#endif

static size_t plain_end(const char *s, size_t i, size_t n) {
#if defined(__SSE2__)
    while (n - i >= 16) {
        unsigned m = stop_mask(s + i);
        if (m) return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
    /* The last bytes (most strings end there: a payload's last value is
     * often its longest string): the 16 bytes that end the input, those
     * before i shifted out, instead of a byte loop. */
    if (n >= 16 && i < n) {
        unsigned m = stop_mask(s + n - 16) >> (i - (n - 16));
        return m ? i + (size_t)__builtin_ctz(m) : n;
    }
#endif
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
    }
    return i;
}

/* Scans a string starting at the opening quote; fills the span. */
static bool scan_string(struct scan *sc, struct keyspan *span) {
    size_t start = ++sc->i;
    bool escaped = false;
    while ((sc->i = plain_end(sc->s, sc->i, sc->n)) < sc->n) {
        unsigned char c = (unsigned char)sc->s[sc->i];
        if (c == '"') {
            if (span) {
                span->p = sc->s + start;
                span->len = sc->i - start;
                span->escaped = escaped;
            }
            sc->i++;
            return true;
        }
        if (c < 0x20) return fail(sc, sc->i, "control character in a string");
        if (c == '\\') {
            escaped = true;
            if (sc->i + 1 >= sc->n) break;
            char e = sc->s[sc->i + 1];
            if (e == 'u') {
                uint32_t u;
                if (!read_hex4(sc, sc->i + 2, &u))
                    return fail(sc, sc->i, "invalid \\u escape");
                if (u == 0) return fail(sc, sc->i, "\\u0000 in a string");
                if (u >= 0xDC00 && u <= 0xDFFF)
                    return fail(sc, sc->i, "lone low surrogate escape");
                if (u >= 0xD800 && u <= 0xDBFF) {
                    uint32_t lo;
                    if (sc->i + 12 > sc->n || sc->s[sc->i + 6] != '\\' ||
                        sc->s[sc->i + 7] != 'u' || !read_hex4(sc, sc->i + 8, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return fail(sc, sc->i, "high surrogate escape without its low half");
                    sc->i += 12;
                } else {
                    sc->i += 6;
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                e != 'r' && e != 't')
                return fail(sc, sc->i, "invalid escape in a string");
            sc->i += 2;
            continue;
        }
        size_t k = utf8_seq((const unsigned char *)sc->s + sc->i, sc->n - sc->i);
        if (!k) return fail(sc, sc->i, "invalid UTF-8 in a string");
        sc->i += k;
    }
    return fail(sc, start - 1, "unterminated string");
}

static bool scan_number(struct scan *sc) {
    size_t start = sc->i;
    bool real = false;
    if (sc->s[sc->i] == '-') sc->i++;
    if (sc->i >= sc->n) return fail(sc, start, "invalid number");
    if (sc->s[sc->i] == '0') {
        sc->i++;
    } else if (sc->s[sc->i] >= '1' && sc->s[sc->i] <= '9') {
        while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') sc->i++;
    } else {
        return fail(sc, start, "invalid number");
    }
    if (sc->i < sc->n && sc->s[sc->i] == '.') {
        real = true;
        sc->i++;
        size_t d = sc->i;
        while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') sc->i++;
        if (sc->i == d) return fail(sc, start, "invalid number");
    }
    long exp10 = 0; /* the exponent, saturated at +-100000 */
    if (sc->i < sc->n && (sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E')) {
        real = true;
        sc->i++;
        bool neg = false;
        if (sc->i < sc->n && (sc->s[sc->i] == '+' || sc->s[sc->i] == '-')) neg = sc->s[sc->i++] == '-';
        size_t d = sc->i;
        while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') {
            if (exp10 < 100000) exp10 = exp10 * 10 + (sc->s[sc->i] - '0');
            sc->i++;
        }
        if (sc->i == d) return fail(sc, start, "invalid number");
        if (neg) exp10 = -exp10;
    }
    size_t len = sc->i - start;
    if (real) {
        /* Only overflow to infinity is refused (underflow is a number), and
         * a value below 10^300 cannot overflow: count the integer part's
         * digits after its leading zeros, add the exponent, and leave
         * strtod (a fifth of a replay's payload validation) to the rest. */
        size_t k = start + (sc->s[start] == '-');
        while (k < sc->i && sc->s[k] == '0') k++;
        long idig = 0;
        while (k < sc->i && sc->s[k] >= '0' && sc->s[k] <= '9') {
            idig++;
            k++;
        }
        if (idig + exp10 < 300) return true;
    }
    char buf[64];
    if (!real) {
        /* must fit int64, as jansson's json_int_t */
        size_t digits = len - (sc->s[start] == '-');
        if (digits < 19) return true;
        if (digits > 19) return fail(sc, start, "integer out of the 64-bit range");
        memcpy(buf, sc->s + start, len);
        buf[len] = 0;
        errno = 0;
        (void)strtoll(buf, NULL, 10);
        if (errno == ERANGE) return fail(sc, start, "integer out of the 64-bit range");
        return true;
    }
    char *heap = NULL, *p = buf;
    if (len >= sizeof buf) {
        heap = malloc(len + 1);
        if (!heap) return fail(sc, start, "out of memory");
        p = heap;
    }
    memcpy(p, sc->s + start, len);
    p[len] = 0;
    errno = 0;
    double d = strtod(p, NULL);
    bool ok = !(errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) && isfinite(d);
    free(heap);
    if (!ok) return fail(sc, start, "real number out of range");
    return true;
}

static bool scan_value(struct scan *sc, unsigned depth);

/* Decodes a JSON string body (validated) into out (room for len bytes:
 * decoding never grows). Returns the decoded length. */
static size_t unescape(const char *p, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (p[i] != '\\') {
            out[o++] = p[i++];
            continue;
        }
        char e = p[i + 1];
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            out[o++] = to[strchr(from, e) - from];
            i += 2;
            continue;
        }
        uint32_t u = 0;
        for (int k = 0; k < 4; k++) u = u << 4 | (uint32_t)hexval(p[i + 2 + (size_t)k]);
        i += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            uint32_t lo = 0;
            for (int k = 0; k < 4; k++) lo = lo << 4 | (uint32_t)hexval(p[i + 2 + (size_t)k]);
            i += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u < 0x80) {
            out[o++] = (char)u;
        } else if (u < 0x800) {
            out[o++] = (char)(0xC0 | u >> 6);
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            out[o++] = (char)(0xE0 | u >> 12);
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | u >> 18);
            out[o++] = (char)(0x80 | ((u >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    return o;
}

static int cmp_span(const void *a, const void *b) {
    const struct keyspan *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

/* Duplicate keys among spans (escaped ones are decoded first, into `arena`). */
static bool has_duplicate(struct keyspan *k, size_t n, char *arena) {
    if (n < 2) return false;
    for (size_t i = 0; i < n; i++) {
        if (!k[i].escaped) continue;
        size_t len = unescape(k[i].p, k[i].len, arena);
        k[i].p = arena;
        k[i].len = len;
        arena += len;
    }
    if (n <= 8) { /* the usual payload: pairwise beats sorting */
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (k[i].len == k[j].len && memcmp(k[i].p, k[j].p, k[i].len) == 0)
                    return true;
        return false;
    }
    qsort(k, n, sizeof *k, cmp_span);
    for (size_t i = 1; i < n; i++)
        if (k[i].len == k[i - 1].len && memcmp(k[i].p, k[i - 1].p, k[i].len) == 0)
            return true;
    return false;
}

static bool scan_object(struct scan *sc, unsigned depth) {
    size_t open = sc->i++;
    struct keyspan local[32], *keys = local;
    size_t nkeys = 0, capkeys = 32, escaped_bytes = 0;
    bool ok = false;
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}') {
        sc->i++;
        return true;
    }
    for (;;) {
        skip_ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i] != '"') {
            fail(sc, sc->i, "expected a string key");
            goto out;
        }
        if (nkeys == capkeys) {
            size_t ncap = capkeys * 2;
            struct keyspan *nk = malloc(ncap * sizeof *nk);
            if (!nk) {
                fail(sc, sc->i, "out of memory");
                goto out;
            }
            memcpy(nk, keys, nkeys * sizeof *nk);
            if (keys != local) free(keys);
            keys = nk;
            capkeys = ncap;
        }
        if (!scan_string(sc, &keys[nkeys])) goto out;
        if (keys[nkeys].escaped) escaped_bytes += keys[nkeys].len;
        nkeys++;
        skip_ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i] != ':') {
            fail(sc, sc->i, "expected ':'");
            goto out;
        }
        sc->i++;
        if (!scan_value(sc, depth + 1)) goto out;
        skip_ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == ',') {
            sc->i++;
            continue;
        }
        if (sc->i < sc->n && sc->s[sc->i] == '}') {
            sc->i++;
            break;
        }
        fail(sc, sc->i, "expected ',' or '}'");
        goto out;
    }
    {
        char small[256];
        char *arena = escaped_bytes <= sizeof small ? small : malloc(escaped_bytes);
        if (!arena) {
            fail(sc, open, "out of memory");
            goto out;
        }
        bool dup = has_duplicate(keys, nkeys, arena);
        if (arena != small) free(arena);
        if (dup) {
            fail(sc, open, "duplicate key in an object");
            goto out;
        }
    }
    ok = true;
out:
    if (keys != local) free(keys);
    return ok;
}

static bool scan_array(struct scan *sc, unsigned depth) {
    sc->i++;
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == ']') {
        sc->i++;
        return true;
    }
    for (;;) {
        if (!scan_value(sc, depth + 1)) return false;
        skip_ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == ',') {
            sc->i++;
            continue;
        }
        if (sc->i < sc->n && sc->s[sc->i] == ']') {
            sc->i++;
            return true;
        }
        return fail(sc, sc->i, "expected ',' or ']'");
    }
}

static bool scan_literal(struct scan *sc, const char *word) {
    size_t len = strlen(word);
    if (sc->n - sc->i < len || memcmp(sc->s + sc->i, word, len) != 0)
        return fail(sc, sc->i, "invalid literal");
    sc->i += len;
    return true;
}

static bool scan_value(struct scan *sc, unsigned depth) {
    if (depth > CJSON_MAX_DEPTH) return fail(sc, sc->i, "nesting too deep");
    skip_ws(sc);
    if (sc->i >= sc->n) return fail(sc, sc->i, "unexpected end of input");
    switch (sc->s[sc->i]) {
    case '{': return scan_object(sc, depth);
    case '[': return scan_array(sc, depth);
    case '"': return scan_string(sc, NULL);
    case 't': return scan_literal(sc, "true");
    case 'f': return scan_literal(sc, "false");
    case 'n': return scan_literal(sc, "null");
    default: return scan_number(sc);
    }
}

bool cjson_validate_object(const char *text, size_t len, struct cjson_error *err) {
    struct scan sc = {.s = text, .n = len, .i = 0, .err = err};
    skip_ws(&sc);
    if (sc.i >= sc.n) return fail(&sc, sc.i, "empty input");
    if (sc.s[sc.i] != '{') return fail(&sc, sc.i, "not a JSON object");
    if (!scan_object(&sc, 1)) return false;
    skip_ws(&sc);
    if (sc.i != sc.n) return fail(&sc, sc.i, "trailing characters after the object");
    return true;
}


/* ---- building a tree (cjson_parse_object) ------------------------------------------
 *
 * The text is validated first (above), so the builder below checks nothing
 * but its allocations: every value comes from one of jansson's
 * constructors, which report running out of memory, never from json_loadb,
 * whose lexer does not (it drops a character it could not save, and may
 * then read past its buffer or fail an assertion: jansson issue #362). */

static locale_t num_locale; /* "C": '.' is the decimal point whatever the process's */
static pthread_once_t num_locale_once = PTHREAD_ONCE_INIT;

static void num_locale_init(void) {
    num_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

struct build {
    const char *s;
    size_t i;
};

static void b_ws(struct build *b) {
    while (b->s[b->i] == ' ' || b->s[b->i] == '\t' || b->s[b->i] == '\n' || b->s[b->i] == '\r')
        b->i++;
}

/* The string at b->i (its opening quote), decoded into a NUL-terminated
 * buffer: small when it fits, else malloc'd (*heap). NULL: out of memory. */
static char *b_string(struct build *b, char *small, size_t cap, char **heap, size_t *len) {
    size_t start = ++b->i;
    while (b->s[b->i] != '"') b->i += b->s[b->i] == '\\' ? 2 : 1;
    size_t raw = b->i - start;
    b->i++;
    *heap = NULL;
    char *out = small;
    if (raw + 1 > cap) {
        out = *heap = malloc(raw + 1);
        if (!out) return NULL;
    }
    *len = unescape(b->s + start, raw, out);
    out[*len] = 0;
    return out;
}

static json_t *b_value(struct build *b);

static json_t *b_number(struct build *b) {
    size_t start = b->i;
    bool real = false;
    while (strchr("+-0123456789.eE", b->s[b->i]) && b->s[b->i]) {
        real |= b->s[b->i] == '.' || b->s[b->i] == 'e' || b->s[b->i] == 'E';
        b->i++;
    }
    char small[64], *p = small;
    size_t len = b->i - start;
    if (len >= sizeof small && !(p = malloc(len + 1))) return NULL;
    memcpy(p, b->s + start, len);
    p[len] = 0;
    json_t *v;
    if (real) {
        pthread_once(&num_locale_once, num_locale_init);
        v = json_real(num_locale ? strtod_l(p, NULL, num_locale) : strtod(p, NULL));
    } else {
        v = json_integer((json_int_t)strtoll(p, NULL, 10));
    }
    if (p != small) free(p);
    return v;
}

static json_t *b_object(struct build *b) {
    json_t *o = json_object();
    if (!o) return NULL;
    b->i++;
    b_ws(b);
    if (b->s[b->i] == '}') {
        b->i++;
        return o;
    }
    for (;;) {
        b_ws(b);
        char small[128], *heap;
        size_t klen;
        char *key = b_string(b, small, sizeof small, &heap, &klen);
        json_t *v = NULL;
        if (key) {
            b_ws(b);
            b->i++; /* ':' */
            v = b_value(b);
        }
        /* keys never hold NUL (\u0000 is refused), nor repeat (the
         * validator refuses duplicates) */
        bool ok = v && json_object_set_new_nocheck(o, key, v) == 0;
        free(heap);
        if (!ok) {
            json_decref(o);
            return NULL;
        }
        b_ws(b);
        if (b->s[b->i++] == '}') return o;
    }
}

static json_t *b_array(struct build *b) {
    json_t *a = json_array();
    if (!a) return NULL;
    b->i++;
    b_ws(b);
    if (b->s[b->i] == ']') {
        b->i++;
        return a;
    }
    for (;;) {
        json_t *v = b_value(b);
        if (!v || json_array_append_new(a, v) != 0) {
            json_decref(a);
            return NULL;
        }
        b_ws(b);
        if (b->s[b->i++] == ']') return a;
    }
}

static json_t *b_value(struct build *b) {
    b_ws(b);
    switch (b->s[b->i]) {
    case '{': return b_object(b);
    case '[': return b_array(b);
    case '"': {
        char small[128], *heap;
        size_t len;
        char *str = b_string(b, small, sizeof small, &heap, &len);
        json_t *v = str ? json_stringn_nocheck(str, len) : NULL;
        free(heap);
        return v;
    }
    case 't': b->i += 4; return json_true();
    case 'f': b->i += 5; return json_false();
    case 'n': b->i += 4; return json_null();
    default: return b_number(b);
    }
}

cairn_status cjson_parse_object(const char *text, size_t len, json_t **out,
                                struct cjson_error *err) {
    *out = NULL;
    struct cjson_error e = {0, NULL};
    if (!cjson_validate_object(text, len, &e)) {
        if (err) *err = e;
        /* the validator's own allocations (many keys, a long real) */
        if (e.what && !strcmp(e.what, "out of memory"))
            return cerr_set(CAIRN_ENOMEM, "out of memory checking JSON text");
        return cerr_set(CAIRN_EFORMAT, "not a JSON object: %s at offset %zu", e.what, e.offset);
    }
    /* validated: every token is complete and the text ends after the
     * object, so the builder never reads past len */
    struct build b = {.s = text, .i = 0};
    *out = b_value(&b);
    if (!*out) return cerr_set(CAIRN_ENOMEM, "out of memory building a JSON tree");
    return CAIRN_OK;
}
