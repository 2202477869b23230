/* util.c — small shared helpers (see util.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

char *cairn_path_join(const char *dir, const char *name)
{
    size_t la = strlen(dir), lb = strlen(name);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, la);
    p[la] = '/';
    memcpy(p + la + 1, name, lb + 1);
    return p;
}

/*
 * Well-formed UTF-8 per RFC 3629 / Unicode table 3-7: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
 * sequences. NUL bytes are valid UTF-8 (callers that forbid them check).
 */
int cairn_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* > U+10FFFF */
        } else {
            return 0; /* continuation byte, C0/C1, F5..FF */
        }
        if (n - i <= need)
            return 0;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}
