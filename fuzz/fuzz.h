/* fuzz.h — what each fuzz target provides: the libFuzzer entry point and a
 * seeded generator of interesting inputs used by the replay driver. */
#ifndef CAIRN_FUZZ_H
#define CAIRN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Writes one input of at most cap bytes to out; returns its size. */
size_t fuzz_generate(uint64_t *rng, uint8_t *out, size_t cap);

static inline uint64_t fuzz_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Output buffer of a generator: appends what fits, drops the rest. */
struct fuzz_gen {
    uint64_t *rng;
    uint8_t *out;
    size_t cap, n;
};

static inline void fuzz_put(struct fuzz_gen *g, const void *p, size_t l) {
    if (g->n + l <= g->cap) {
        memcpy(g->out + g->n, p, l);
        g->n += l;
    }
}

static inline void fuzz_puts(struct fuzz_gen *g, const char *s) { fuzz_put(g, s, strlen(s)); }

#endif
