/*
 * err.h — setting the calling thread's error message.
 *
 * Every failing internal function sets a message with cerr_set() and returns
 * the status. Messages follow one grammar:
 *     could not <verb> <object> "<path>" at offset <n>: <reason>
 * cerr_errno() maps an errno to a status (ENOSPC -> CAIRN_ENOSPC, ENOMEM ->
 * CAIRN_ENOMEM, the rest of the I/O errors -> CAIRN_EIO).
 */
#ifndef CAIRN_COMMON_ERR_H
#define CAIRN_COMMON_ERR_H

#include "cairn.h"

#if defined(__GNUC__)
#define CAIRN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CAIRN_PRINTF(a, b)
#endif

/* Sets the thread's message and returns st (so: `return cerr_set(...)`). */
cairn_status cerr_set(cairn_status st, const char *fmt, ...) CAIRN_PRINTF(2, 3);
/* Maps errno value e (positive) to a status. */
cairn_status cerr_from_errno(int e);
/* cerr_set(cerr_from_errno(e), fmt..., ": " strerror(e)) */
cairn_status cerr_errno(int e, const char *fmt, ...) CAIRN_PRINTF(2, 3);
/* Prefixes the current message: "<prefix>: <old message>". Returns st. */
cairn_status cerr_wrap(cairn_status st, const char *fmt, ...) CAIRN_PRINTF(2, 3);
void cerr_clear(void);

/* The thread's message, kept across a cleanup that calls something which
 * clears or sets it (a public function: every one starts with
 * cerr_clear), so that the first failure's message is the one reported. */
#define CERR_MAX 1024
struct cerr_saved {
    char msg[CERR_MAX];
};
void cerr_save(struct cerr_saved *s);
/* Sets the saved message again; returns st. */
cairn_status cerr_restore(const struct cerr_saved *s, cairn_status st);

#endif
