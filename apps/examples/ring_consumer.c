/* SPDX-License-Identifier: MIT */
/* ring_consumer: an example local consumer of printcast's shared-memory ring (printcast_ring.h).
 * Attaches to a ring, writes COUNT frames starting at a keyframe to a file and reports
 * overwrites and restarts. An H.264 ring gives a raw Annex-B .h264 file (ffplay/ffmpeg -f h264),
 * a JPEG ring concatenated JPEGs (-f mjpeg). The file appears only when complete: the frames go
 * to OUT.tmp, which is fsync'ed and renamed.
 *
 *   ring_consumer [-n COUNT] [-t SECONDS] STREAM OUT
 *   ring_consumer -n 150 printcast-h264 camera.h264
 *
 * Exit status: 0 COUNT frames written; 1 error; 2 usage; 3 time limit reached first (the frames
 * received so far are written). C99, libc and printcast_ring only. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "printcast_ring.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr,
          "usage: ring_consumer [-n COUNT] [-t SECONDS] STREAM OUT\n"
          "  STREAM  ring name, e.g. printcast-h264 (/dev/shm/printcast-h264)\n"
          "  -n      frames to write (default 100)\n"
          "  -t      give up after SECONDS (default 30)\n");
}

int main(int argc, char** argv) {
  long count = 100;
  double limit_s = 30;
  int opt;
  while ((opt = getopt(argc, argv, "n:t:h")) != -1) {
    if (opt == 'n') {
      count = strtol(optarg, NULL, 10);
    } else if (opt == 't') {
      limit_s = strtod(optarg, NULL);
    } else {
      usage();
      return 2;
    }
  }
  if (argc - optind != 2 || count <= 0 || limit_s <= 0) {
    usage();
    return 2;
  }
  const char* stream = argv[optind];
  const char* out_path = argv[optind + 1];
  const double deadline = now_s() + limit_s;

  /* The producer may not be up yet: retry while the ring does not exist. */
  printcast_ring* ring = NULL;
  int rc;
  while ((rc = printcast_ring_open(stream, &ring)) == PRINTCAST_RING_E_NOENT && now_s() < deadline) {
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  if (rc != PRINTCAST_RING_OK) {
    fprintf(stderr, "ring_consumer: %s: %s%s%s\n", stream, printcast_ring_strerror(rc),
            rc == PRINTCAST_RING_E_SYSTEM ? ": " : "", rc == PRINTCAST_RING_E_SYSTEM ? strerror(errno) : "");
    return 1;
  }
  printcast_ring_info info;
  printcast_ring_get_info(ring, &info);
  if (info.codec != PRINTCAST_RING_CODEC_H264 && info.codec != PRINTCAST_RING_CODEC_MJPEG) {
    fprintf(stderr, "ring_consumer: %s: unknown codec 0x%08x\n", stream, (unsigned)info.codec);
    printcast_ring_close(ring);
    return 1;
  }

  size_t tmp_len = strlen(out_path) + 5;
  char* tmp_path = malloc(tmp_len);
  unsigned char* buf = malloc(info.max_frame_size);
  if (tmp_path == NULL || buf == NULL) {
    fprintf(stderr, "ring_consumer: out of memory\n");
    return 1;
  }
  snprintf(tmp_path, tmp_len, "%s.tmp", out_path);
  FILE* out = fopen(tmp_path, "wb");
  if (out == NULL) {
    fprintf(stderr, "ring_consumer: %s: %s\n", tmp_path, strerror(errno));
    return 1;
  }

  long written = 0, keyframes = 0, overwrites = 0, restarts = 0;
  unsigned long long bytes = 0, lost = 0;
  int status = 0;
  while (written < count) {
    const double left = deadline - now_s();
    if (left <= 0) {
      status = 3;
      break;
    }
    printcast_ring_frame f;
    rc = printcast_ring_next(ring, buf, info.max_frame_size, &f, left > 1 ? 1000 : (int)(left * 1000) + 1);
    if (rc == PRINTCAST_RING_OK) {
      if (f.codec != info.codec) {
        fprintf(stderr, "ring_consumer: the codec changed after a restart; stopping\n");
        break;
      }
      if (fwrite(buf, 1, f.length, out) != f.length) {
        fprintf(stderr, "ring_consumer: %s: %s\n", tmp_path, strerror(errno));
        status = 1;
        break;
      }
      ++written;
      bytes += f.length;
      keyframes += (f.flags & PRINTCAST_RING_KEYFRAME) ? 1 : 0;
      lost = f.lost;
    } else if (rc == PRINTCAST_RING_OVERWRITTEN) {
      ++overwrites;
      fprintf(stderr,
              "ring_consumer: overwritten at sequence %llu (reader too slow); resuming at a keyframe\n",
              (unsigned long long)f.sequence);
    } else if (rc == PRINTCAST_RING_RESTARTED) {
      ++restarts;
      fprintf(stderr, "ring_consumer: producer restarted (generation %u); resuming at a keyframe\n",
              (unsigned)f.generation);
    } else if (rc < 0) {
      fprintf(stderr, "ring_consumer: %s\n", printcast_ring_strerror(rc));
      status = 1;
      break;
    }
  }
  printcast_ring_close(ring);
  free(buf);

  if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0) {
    fprintf(stderr, "ring_consumer: %s: %s\n", tmp_path, strerror(errno));
    unlink(tmp_path);
    return 1;
  }
  if (status == 1 || rename(tmp_path, out_path) != 0) {
    if (status != 1) fprintf(stderr, "ring_consumer: rename to %s: %s\n", out_path, strerror(errno));
    unlink(tmp_path);
    return 1;
  }
  free(tmp_path);
  printf("wrote %ld frames (%ld keyframes, %llu bytes) to %s; overwrites %ld, restarts %ld, lost %llu\n",
         written, keyframes, bytes, out_path, overwrites, restarts, lost);
  return status;
}
