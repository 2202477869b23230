/*
 * jalloc.h — telling when jansson ran out of memory.
 *
 * jansson (2.14) does not always report a failed allocation. Its lexer
 * drops a character it could not save and goes on (json_loadb may return a
 * tree a character short, read past its buffer or fail an assertion: we
 * parse with common/json.h's cjson_parse_object instead); its dumper
 * writes a key in part when an append fails, and json_dumps returns the
 * text. So every dump of ours is bracketed: jalloc_begin(), the jansson
 * calls, then jalloc_failed() says whether any allocation jansson made on
 * this thread in between failed, whatever the calls returned; the result
 * is then thrown away as CAIRN_ENOMEM.
 *
 * The first jalloc_begin() wraps jansson's allocator (json_set_alloc_funcs)
 * around the one installed then (its malloc, the same free): an
 * application's own jansson allocator keeps working under it. One installed
 * after that replaces the wrapper, and failures go unseen again.
 */
#ifndef CAIRN_COMMON_JALLOC_H
#define CAIRN_COMMON_JALLOC_H

#include <stdbool.h>

void jalloc_begin(void);
bool jalloc_failed(void);

#endif
