/* SPDX-License-Identifier: MIT */
/* Ring helpers shared by the C reader (printcast_ring.c) and the C++ producer (shm_ring.cpp). */
#ifndef PRINTCAST_RING_INTERNAL_H
#define PRINTCAST_RING_INTERNAL_H

#include <stdint.h>

#include "printcast_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t printcast_ring_internal_now_ns(void);

/* Wake every process waiting on `word` (FUTEX_WAKE, INT_MAX, shared). */
void printcast_ring_internal_wake_all(uint32_t* word);

/* Reader-table entries whose pid exists and whose heartbeat is younger than
 * PRINTCAST_RING_READER_STALE_MS at `now_ns`. `base` is the start of a validated mapping. */
uint32_t printcast_ring_internal_live_readers(uint8_t* base, int64_t now_ns);

/* 1 when `stream` is 1..200 characters of [A-Za-z0-9._-], else 0. */
int printcast_ring_internal_valid_name(const char* stream);

#ifdef __cplusplus
}
#endif

#endif /* PRINTCAST_RING_INTERNAL_H */
