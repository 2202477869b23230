/*
 * oom.c — the allocation-failure seam (oom.h): wrappers the linker puts in
 * front of the allocators (-Wl,--wrap=NAME sends every call to NAME in the
 * program's objects to __wrap_NAME; __real_NAME is the allocator itself).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "oom.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);

static _Atomic uint64_t nth, count, fired;
static _Atomic bool persistent, wrapped;
static _Thread_local unsigned paused;

/* jansson allocates with its own malloc unless told otherwise: through
 * this file's calls, which the link wraps. Installed before main, so
 * before libcairn wraps jansson's allocator around it (common/jalloc.h). */
static void *json_alloc(size_t n)
{
    return malloc(n);
}

static void json_free(void *p)
{
    free(p);
}

__attribute__((constructor)) static void json_install(void)
{
    json_set_alloc_funcs(json_alloc, json_free);
}

void oom_set(uint64_t n, bool persist)
{
    atomic_store(&nth, 0);
    atomic_store(&count, 0);
    atomic_store(&fired, 0);
    atomic_store(&persistent, persist);
    atomic_store(&nth, n);
}

void oom_clear(void)
{
    atomic_store(&nth, 0);
}

uint64_t oom_count(void)
{
    return atomic_load(&count);
}

uint64_t oom_fired(void)
{
    return atomic_load(&fired);
}

void oom_pause(void)
{
    paused++;
}

void oom_resume(void)
{
    paused--;
}

bool oom_wrapped(void)
{
    /* any allocation through the wrappers proves the link */
    free(malloc(1));
    return atomic_load(&wrapped);
}

/* Counts an allocation; true if it must fail. */
static bool fail_now(void)
{
    atomic_store_explicit(&wrapped, true, memory_order_relaxed);
    uint64_t n = atomic_load(&nth);
    if (!n || paused)
        return false;
    uint64_t c = atomic_fetch_add(&count, 1) + 1;
    if (c == n || (c > n && atomic_load(&persistent))) {
        atomic_fetch_add(&fired, 1);
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t sz)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, sz);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL; /* p stays as it was */
    }
    return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strndup(s, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    if (fail_now())
        return ENOMEM;
    return __real_posix_memalign(p, align, n);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
    if (fail_now())
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(out, fmt, ap);
    va_end(ap);
    return r;
}
