/*
 * oom.h — the allocation-failure seam of the fault tests: the n-th memory
 * allocation from now fails (once, or that one and every later one), as
 * malloc fails when memory runs out.
 *
 * A test program that uses it is linked with oom.c and with
 * -Wl,--wrap=malloc,... (tests/meson.build, oom_wrap): every call to an
 * allocator in its objects and in the static libcairn it links goes
 * through oom.c first, so every allocation the library makes counts,
 * on every thread, and jansson's (oom.c routes them through it with
 * json_set_alloc_funcs before main). Allocations inside other libraries (libc's own,
 * zstd, OpenSSL) are not counted and never fail here.
 *
 * The test's own allocations (its generators, its checks) must not be
 * the ones that fail: it brackets them with oom_pause()/oom_resume(),
 * which this thread's allocations skip the count within.
 */
#ifndef CAIRN_TEST_OOM_H
#define CAIRN_TEST_OOM_H

#include <stdbool.h>
#include <stdint.h>

/* Arms the seam: counting starts at 0; allocation number nth (1-based)
 * fails, and with persistent every one after it as well. nth 0 disarms
 * (as oom_clear). Resets the counts. */
void oom_set(uint64_t nth, bool persistent);
void oom_clear(void);
/* Allocations counted since oom_set, and how many of them failed. */
uint64_t oom_count(void);
uint64_t oom_fired(void);
/* This thread's allocations are neither counted nor failed until the
 * matching oom_resume (nests). */
void oom_pause(void);
void oom_resume(void);
/* Whether the program was linked with the wrappers (oom_wrap in meson):
 * false when the linker could not wrap, and the test must skip. */
bool oom_wrapped(void);

#endif
