/*
 * replay_main.c — runs a fuzz target without libFuzzer, as part of
 * `meson test` (suite fuzz-replay): every file of the corpus directories
 * given as arguments (crashes found by fuzzing become seeds there), then
 * CAIRN_FUZZ_ITERS (default 20000) inputs from the target's seeded
 * generator. The seed is printed; CAIRN_SEED overrides it.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

static long run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 1;
}

static long run_path(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    if (!d) return 0;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        n += run_file(p);
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    long files = 0;
    for (int i = 1; i < argc; i++) files += run_path(argv[i]);
    uint64_t seed = 0x5eed;
    const char *s = getenv("CAIRN_SEED");
    if (s) seed = strtoull(s, NULL, 0);
    long iters = 20000;
    const char *it = getenv("CAIRN_FUZZ_ITERS");
    if (it) iters = atol(it);
    printf("fuzz replay: %ld corpus files, %ld generated inputs, seed %" PRIu64 "\n", files,
           iters, seed);
    uint64_t rng = seed;
    static uint8_t buf[1 << 16];
    for (long i = 0; i < iters; i++) {
        size_t n = fuzz_generate(&rng, buf, sizeof buf);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("%ld passed, 0 failed\n", files + iters);
    return 0;
}
