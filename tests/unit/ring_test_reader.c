/* SPDX-License-Identifier: MIT */
/* A reader process for the ring's multi-process tests (shm_ring_test.cpp): reads frames and
 * prints one line per event. Frames made by the test carry their sequence in their bytes
 * (byte i == (sequence * 31 + i) & 0xff), which this checks.
 *
 *   printcast-test-ring-reader STREAM LAST_SEQUENCE DELAY_MS
 *
 * Lines: "F <sequence> <keyframe 0|1> <content ok 0|1>", "O <sequence>" (overwritten),
 * "R <generation>" (restarted), "E <code>" (error). Exits after the frame LAST_SEQUENCE, or
 * after 10 s without a frame. DELAY_MS: sleep after each frame (a slow reader). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "printcast_ring.h"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const uint64_t last = strtoull(argv[2], NULL, 10);
  const long delay_ms = strtol(argv[3], NULL, 10);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printcast_ring* ring = NULL;
  int rc = printcast_ring_open(argv[1], &ring);
  if (rc != PRINTCAST_RING_OK) {
    printf("E %d\n", rc);
    return 1;
  }
  static unsigned char buf[1 << 20];
  for (;;) {
    printcast_ring_frame f;
    rc = printcast_ring_next(ring, buf, sizeof buf, &f, 10000);
    if (rc == PRINTCAST_RING_OK) {
      int ok = 1;
      for (uint32_t i = 0; i < f.length; ++i) {
        if (buf[i] != (unsigned char)((f.sequence * 31 + i) & 0xff)) {
          ok = 0;
          break;
        }
      }
      printf("F %llu %d %d\n", (unsigned long long)f.sequence, (f.flags & PRINTCAST_RING_KEYFRAME) ? 1 : 0,
             ok);
      if (f.sequence >= last) break;
      if (delay_ms > 0) {
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
      }
    } else if (rc == PRINTCAST_RING_OVERWRITTEN) {
      printf("O %llu\n", (unsigned long long)f.sequence);
    } else if (rc == PRINTCAST_RING_RESTARTED) {
      printf("R %u\n", (unsigned)f.generation);
    } else if (rc == PRINTCAST_RING_TIMEOUT) {
      break;
    } else {
      printf("E %d\n", rc);
      break;
    }
  }
  printcast_ring_close(ring);
  return 0;
}
