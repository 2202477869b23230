/*
 * jalloc.c — jansson's allocator, wrapped to notice failures (jalloc.h).
 */
#include <pthread.h>
#include <stdbool.h>

#include <jansson.h>

#include "common/jalloc.h"

static json_malloc_t prev_malloc;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Thread_local bool failed;

static void *track_malloc(size_t n)
{
    void *p = prev_malloc(n);
    if (!p)
        failed = true;
    return p;
}

static void install(void)
{
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    json_get_alloc_funcs(&m, &f);
    prev_malloc = m;
    json_set_alloc_funcs(track_malloc, f);
}

void jalloc_begin(void)
{
    pthread_once(&once, install);
    failed = false;
}

bool jalloc_failed(void)
{
    return failed;
}
