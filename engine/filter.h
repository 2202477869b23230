/*
 * filter.h — payload filters (public cairn_filter_parse/free live in
 * filter.c). The grammar is in include/cairn.h. A parsed filter is
 * immutable and may be shared between threads.
 */
#ifndef CAIRN_ENGINE_FILTER_H
#define CAIRN_ENGINE_FILTER_H

#include <jansson.h>
#include <stdbool.h>

#include "cairn.h"

/* true if the payload object (NULL = no payload) satisfies the filter. */
bool filter_match(const cairn_filter *f, const json_t *payload);

#endif
