/*
 * frame.c — the allocator of page frames (see pager.h).
 *
 * Every live page of every open collection is one PAGE_SIZE frame, so a
 * database of a few GB is hundreds of thousands of them, allocated while a
 * replay or an open runs and freed at close. posix_memalign gave each one
 * its own malloc chunk: the header before an aligned frame and the gap the
 * alignment leaves behind touched about three 4 KiB pages per 8 KiB frame,
 * and every first touch is a page fault (the replay of a restore spent half
 * of its apply thread in the kernel clearing pages). Here frames are carved
 * from chunks of FRAME_CHUNK bytes aligned to their size, mapped with mmap:
 * a fresh frame costs its own two pages and nothing else, fresh memory is
 * already zero (no memset), and a frame finds its chunk by masking its
 * address.
 *
 * The first frame of a chunk holds the chunk's header. Freed frames go on
 * their chunk's free list (linked through their first 8 bytes); a chunk with
 * a free or never used frame is on the `avail` list; a chunk whose frames
 * are all free again is unmapped, except one kept as a spare so that a
 * pager freeing and allocating around a boundary does not map and unmap in
 * turn. One mutex guards it all: a frame is allocated per new page, not per
 * record, and the critical sections are a few loads and stores.
 *
 * Under AddressSanitizer a free frame is poisoned, so a use after free is
 * still reported as it was with malloc; frame_stats() lets tests check that
 * every frame came back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/pager.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define FRAME_CHUNK ((size_t)2 << 20)
#define CHUNK_FRAMES ((uint32_t)(FRAME_CHUNK / PAGE_SIZE))

struct fchunk {
    struct fchunk *prev, *next; /* on `avail` while it has a frame to give */
    uint8_t *free;              /* freed frames, linked through their first bytes */
    uint32_t carved;            /* frames [0, carved) were handed out once (0: header) */
    uint32_t live;              /* handed out, not freed */
    int listed;
};

static struct {
    pthread_mutex_t mu;
    struct fchunk *avail;
    struct fchunk *spare; /* an all-free chunk kept mapped (also on avail) */
    size_t chunks;
    size_t live;
} fa = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t fa_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the lock would leave it held in the
 * child forever: take it around fork as malloc does its own. */
static void fa_lock(void) { pthread_mutex_lock(&fa.mu); }
static void fa_unlock(void) { pthread_mutex_unlock(&fa.mu); }
static void fa_init(void) { pthread_atfork(fa_lock, fa_unlock, fa_unlock); }

static void avail_push(struct fchunk *c)
{
    c->prev = NULL;
    c->next = fa.avail;
    if (fa.avail)
        fa.avail->prev = c;
    fa.avail = c;
    c->listed = 1;
}

static void avail_unlink(struct fchunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        fa.avail = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->listed = 0;
}

static _Atomic unsigned fail_map; /* page_frame_fail_map */

void page_frame_fail_map(unsigned n)
{
    atomic_store(&fail_map, n);
}

/* The test seam: true if this mapping must fail. */
static bool map_fault(void)
{
    unsigned n = atomic_load(&fail_map);
    while (n && !atomic_compare_exchange_weak(&fail_map, &n, n - 1)) {
    }
    return n == 1;
}

/* Maps a chunk aligned to its size: over-map, then unmap the ends. */
static struct fchunk *chunk_map(void)
{
    if (map_fault())
        return NULL;
    size_t span = 2 * FRAME_CHUNK;
    uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)m + FRAME_CHUNK - 1) & ~(uintptr_t)(FRAME_CHUNK - 1);
    uint8_t *base = (uint8_t *)a;
    if (base > m)
        munmap(m, (size_t)(base - m));
    if (base + FRAME_CHUNK < m + span)
        munmap(base + FRAME_CHUNK, (size_t)(m + span - (base + FRAME_CHUNK)));
    /* One call faults the whole chunk in (cheaper per page than a fault
     * per first touch); a kernel without it faults page by page. */
    (void)madvise(base, FRAME_CHUNK, MADV_POPULATE_WRITE);
    struct fchunk *c = (struct fchunk *)base;
    memset(c, 0, sizeof *c);
    c->carved = 1;
    POISON(base + PAGE_SIZE, FRAME_CHUNK - PAGE_SIZE);
    return c;
}

static uint8_t *frame_get(int zero)
{
    pthread_once(&fa_once, fa_init);
    pthread_mutex_lock(&fa.mu);
    struct fchunk *c = fa.avail;
    if (!c) {
        pthread_mutex_unlock(&fa.mu);
        c = chunk_map();
        if (!c)
            return NULL;
        pthread_mutex_lock(&fa.mu);
        fa.chunks++;
        avail_push(c);
    }
    uint8_t *f;
    int fresh = 0;
    if (c->free) {
        f = c->free;
        UNPOISON(f, sizeof f);
        memcpy(&c->free, f, sizeof f);
    } else {
        f = (uint8_t *)c + (size_t)c->carved * PAGE_SIZE;
        c->carved++;
        fresh = 1;
    }
    if (c == fa.spare)
        fa.spare = NULL;
    c->live++;
    fa.live++;
    if (!c->free && c->carved == CHUNK_FRAMES)
        avail_unlink(c);
    pthread_mutex_unlock(&fa.mu);
    UNPOISON(f, PAGE_SIZE);
    if (zero && !fresh)
        memset(f, 0, PAGE_SIZE);
    return f;
}

uint8_t *page_frame_alloc(void)
{
    return frame_get(1);
}

uint8_t *page_frame_alloc_raw(void)
{
    return frame_get(0);
}

void page_frame_free(uint8_t *f)
{
    if (!f)
        return;
    struct fchunk *c = (struct fchunk *)((uintptr_t)f & ~(uintptr_t)(FRAME_CHUNK - 1));
    struct fchunk *unmap = NULL;
    pthread_mutex_lock(&fa.mu);
    memcpy(f, &c->free, sizeof f);
    POISON(f, PAGE_SIZE);
    c->free = f;
    c->live--;
    fa.live--;
    if (!c->listed)
        avail_push(c);
    if (c->live == 0) {
        if (!fa.spare) {
            fa.spare = c;
        } else {
            avail_unlink(c);
            fa.chunks--;
            unmap = c;
        }
    }
    pthread_mutex_unlock(&fa.mu);
    if (unmap) {
        UNPOISON(unmap, FRAME_CHUNK);
        munmap(unmap, FRAME_CHUNK);
    }
}

void page_frame_stats(size_t *live, size_t *chunks)
{
    pthread_mutex_lock(&fa.mu);
    if (live)
        *live = fa.live;
    if (chunks)
        *chunks = fa.chunks;
    pthread_mutex_unlock(&fa.mu);
}
