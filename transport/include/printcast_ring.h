/* SPDX-License-Identifier: MIT */
/* printcast_ring.h: the C API (C99) for reading printcast's shared-memory ring of H.264 access
 * units or JPEG frames, and the ring's memory layout (version 1). See docs/ring.md.
 *
 * A producer (printcast-streamer) publishes one POSIX shared-memory object per stream, e.g.
 * "printcast-h264" (/dev/shm/printcast-h264) and "printcast-jpeg". Any number of reader
 * processes attach to it; each keeps its own cursor, so every reader that keeps up receives every
 * access unit in order. A reader that falls behind is told (PRINTCAST_RING_OVERWRITTEN) and then
 * resumes at a keyframe: it never gets a frame that follows a gap without an IDR in between.
 * Readers never block the producer and never block each other; a reader killed at any point
 * (SIGKILL included) leaves nothing locked.
 *
 * Typical use:
 *
 *   printcast_ring* ring = NULL;
 *   if (printcast_ring_open("printcast-h264", &ring) != PRINTCAST_RING_OK) ...;
 *   for (;;) {
 *     printcast_ring_frame f;
 *     int rc = printcast_ring_next(ring, buf, sizeof buf, &f, 1000);
 *     if (rc == PRINTCAST_RING_OK) consume(buf, f.length, f.flags & PRINTCAST_RING_KEYFRAME);
 *     else if (rc < 0) break;            // an error: see printcast_ring_strerror(rc)
 *     // TIMEOUT, OVERWRITTEN and RESTARTED: keep calling; frames resume at a keyframe.
 *   }
 *   printcast_ring_close(ring);
 *
 * Threading: a printcast_ring handle is used by one thread at a time; separate handles (in one
 * process or many) are independent. Link: the static library `printcast_ring` (C, no C++
 * runtime), which needs only libc (and librt where shm_open lives there).
 */
#ifndef PRINTCAST_RING_H
#define PRINTCAST_RING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Memory layout, version 1. All integers are native-endian (producer and readers share a host),
 * naturally aligned; offsets are from the start of the object. Fields marked (atomic) are read and
 * written with atomic loads/stores (GCC __atomic builtins / C11 atomics); the rest are written by
 * the producer before the magic is published and never change afterwards.
 *
 *   [0, 256)                       printcast_ring_header
 *   [slots_offset, +64*slot_count) printcast_ring_slot[slot_count]      (the slot index)
 *   [readers_offset, +64*reader_count) printcast_ring_reader_entry[]    (live-reader table)
 *   [data_offset, +data_capacity)  the data area: access units, back to back, wrapping
 *
 * Sequences: the producer numbers published frames 1, 2, 3, ...; frame s lives in slot
 * s % slot_count. `published` is the newest sequence (0 = none yet).
 *
 * Data area: a frame occupies [position, position + length) in an ever-growing byte position
 * space; its bytes are at data_offset + position % data_capacity and never wrap inside a frame
 * (a frame that would cross the end starts at the next multiple of data_capacity). Before
 * writing a frame the producer raises `reclaimed`: bytes below that position may be overwritten.
 *
 * Seqlock (per slot): the producer makes `lock` odd, writes the slot and the frame's bytes, then
 * makes `lock` even again. A reader loads `lock` (acquire), checks it is even and `sequence` is
 * the one it wants, copies the bytes, issues an acquire fence, and re-loads `lock` and
 * `reclaimed`: if `lock` changed or `reclaimed` > position, the copy may be torn and the frame
 * counts as overwritten.
 *
 * Wake-up: after each publish the producer increments `futex_word` and calls
 * FUTEX_WAKE(INT_MAX) on it (shared, not FUTEX_PRIVATE: the object is MAP_SHARED across
 * processes). A reader loads `futex_word` before checking `published` and sleeps with FUTEX_WAIT
 * on that value, so no publish between the check and the sleep is missed, and every waiting
 * reader is woken (unlike a semaphore shared by readers, where each post wakes one).
 *
 * Creation and restart: a producer always creates a new object: it marks an existing one
 * RETIRED (and wakes its readers), unlinks the name, creates the object under the name, fills
 * it and writes `magic` last (release). A reader checks magic, version, header size, slot size
 * and that every area lies inside the object's size before trusting anything. A reader sees a
 * restart by the RETIRED flag or by the name pointing at another object, reattaches, and gets
 * PRINTCAST_RING_RESTARTED (the new `generation` is old + 1).
 *
 * Readers write only two things: `keyframe_requests` (atomic add) and their own entry of the
 * reader table (claimed by compare-and-swap of `pid` from 0, or from a dead/stale pid; the
 * heartbeat is refreshed at least every 500 ms while the reader calls printcast_ring_next). The
 * producer counts live readers from that table (entries whose pid exists and whose heartbeat is
 * under 3 s old) and never waits for any reader.
 * ------------------------------------------------------------------------------------------------ */

#define PRINTCAST_RING_MAGIC 0x47524350u /* bytes 'P' 'C' 'R' 'G' in little-endian memory */
#define PRINTCAST_RING_VERSION 1u
#define PRINTCAST_RING_HEADER_SIZE 256u
#define PRINTCAST_RING_SLOT_SIZE 64u
#define PRINTCAST_RING_READER_ENTRY_SIZE 64u
#define PRINTCAST_RING_READER_STALE_MS 3000 /* a heartbeat older than this is not a live reader */

/* header.flags */
#define PRINTCAST_RING_RETIRED 1u /* the producer stopped or was replaced: reattach by name */

/* slot.flags and printcast_ring_frame.flags */
#define PRINTCAST_RING_KEYFRAME 1u /* H.264: an IDR access unit with SPS/PPS in front; JPEG: always */

/* FourCC codes of header.codec: four ASCII characters, the first in the lowest byte (V4L2's
 * v4l2_fourcc order). */
#define PRINTCAST_RING_CODEC_H264 0x34363248u  /* 'H' '2' '6' '4': Annex-B access units */
#define PRINTCAST_RING_CODEC_MJPEG 0x47504A4Du /* 'M' 'J' 'P' 'G': one JPEG per frame */

typedef struct printcast_ring_header {
  uint32_t magic;             /*   0 PRINTCAST_RING_MAGIC, written last (atomic, release) */
  uint32_t version;           /*   4 PRINTCAST_RING_VERSION */
  uint32_t header_size;       /*   8 PRINTCAST_RING_HEADER_SIZE */
  uint32_t slot_size;         /*  12 PRINTCAST_RING_SLOT_SIZE */
  uint32_t slot_count;        /*  16 number of slots, 2..65536 */
  uint32_t reader_count;      /*  20 entries in the reader table */
  uint64_t slots_offset;      /*  24 */
  uint64_t readers_offset;    /*  32 */
  uint64_t data_offset;       /*  40 64-byte aligned */
  uint64_t data_capacity;     /*  48 bytes in the data area */
  uint64_t total_size;        /*  56 size of the whole object */
  uint32_t codec;             /*  64 FourCC: PRINTCAST_RING_CODEC_H264 or _MJPEG */
  uint32_t max_frame_size;    /*  68 largest frame the producer accepts (data_capacity / 2) */
  uint32_t width;             /*  72 (atomic) coded picture size of the newest frame, pixels */
  uint32_t height;            /*  76 (atomic) */
  uint32_t producer_pid;      /*  80 */
  uint32_t generation;        /*  84 previous object's generation + 1 (1 for a fresh name) */
  uint32_t futex_word;        /*  88 (atomic) +1 after every publish and on retire */
  uint32_t flags;             /*  92 (atomic) PRINTCAST_RING_RETIRED */
  uint64_t published;         /*  96 (atomic) newest published sequence, 0 = none */
  uint64_t reclaimed;         /* 104 (atomic) data positions below this may be overwritten */
  uint64_t keyframe_requests; /* 112 (atomic) readers add 1 to ask for an IDR */
  uint8_t reserved[PRINTCAST_RING_HEADER_SIZE - 120]; /* zero */
} printcast_ring_header;

typedef struct printcast_ring_slot {
  uint64_t lock;     /*  0 (atomic) seqlock: odd while the producer rewrites this slot */
  uint64_t sequence; /*  8 sequence of the frame in this slot */
  uint64_t position; /* 16 byte position of its data (see Data area) */
  uint32_t length;   /* 24 bytes */
  uint32_t flags;    /* 28 PRINTCAST_RING_KEYFRAME */
  int64_t pts_ns;    /* 32 capture time, CLOCK_MONOTONIC nanoseconds */
  uint32_t width;    /* 40 coded picture size, pixels */
  uint32_t height;   /* 44 */
  uint64_t reserved[2];
} printcast_ring_slot;

typedef struct printcast_ring_reader_entry {
  uint32_t pid;         /*  0 (atomic) 0 = free */
  uint32_t reserved0;   /*  4 */
  int64_t heartbeat_ns; /*  8 (atomic) CLOCK_MONOTONIC of the reader's last call */
  uint64_t delivered;   /* 16 (atomic) frames this reader received (informational) */
  uint64_t overwritten; /* 24 (atomic) times it fell behind (informational) */
  uint64_t reserved[4];
} printcast_ring_reader_entry;

/* ------------------------------------------------------------------------------------------------
 * Reader API
 * ------------------------------------------------------------------------------------------------ */

/* Return codes. Non-negative: the call worked (a frame, or news about the stream); negative: an
 * error. */
enum {
  PRINTCAST_RING_OK = 0,          /* a frame was copied into the caller's buffer */
  PRINTCAST_RING_TIMEOUT = 1,     /* no new frame within timeout_ms (also: producer away) */
  PRINTCAST_RING_OVERWRITTEN = 2, /* this reader fell behind and frames were overwritten; the
                                     next frames start at a keyframe (frame.lost says how many
                                     were lost so far) */
  PRINTCAST_RING_RESTARTED = 3,   /* the producer restarted: the handle is attached to the new
                                     ring (frame.generation); frames resume at a keyframe and
                                     the codec or size may have changed */
  PRINTCAST_RING_E_INVALID = -1,  /* a NULL or malformed argument (stream name: 1..200 of
                                     [A-Za-z0-9._-]) */
  PRINTCAST_RING_E_NOENT = -2,    /* no ring by that name (the producer is not running) or it
                                     is still being created: try again later */
  PRINTCAST_RING_E_FORMAT = -3,   /* the object is not a printcast ring, or has another layout
                                     version, or its sizes are inconsistent */
  PRINTCAST_RING_E_TOOSMALL = -4, /* the buffer is smaller than the next frame; frame.length is
                                     the size needed and the frame is still next: call again
                                     with a bigger buffer (max_frame_size is always enough) */
  PRINTCAST_RING_E_SYSTEM = -5,   /* a system call failed; errno says which error */
  PRINTCAST_RING_E_BUSY = -6      /* the reader table is full (too many live readers) */
};

typedef struct printcast_ring printcast_ring; /* opaque reader handle */

typedef struct printcast_ring_frame {
  uint64_t sequence; /* producer's sequence of this frame (consecutive unless lost) */
  int64_t pts_ns;    /* capture time, CLOCK_MONOTONIC nanoseconds */
  uint32_t length;   /* bytes copied (E_TOOSMALL: bytes needed) */
  uint32_t flags;    /* PRINTCAST_RING_KEYFRAME */
  uint32_t codec;    /* PRINTCAST_RING_CODEC_H264 / _MJPEG */
  uint32_t width;    /* coded picture size, pixels */
  uint32_t height;
  uint32_t generation; /* ring generation the frame came from */
  uint64_t lost;       /* frames this handle has lost to overwrites and restarts, in total */
} printcast_ring_frame;

typedef struct printcast_ring_info {
  uint32_t codec;
  uint32_t width, height; /* newest frame's size (0 before the first frame) */
  uint32_t generation;
  uint32_t slot_count;
  uint32_t max_frame_size; /* a buffer this big always holds a frame */
  uint64_t data_capacity;
  uint64_t published; /* newest sequence */
  uint32_t producer_pid;
  uint32_t live_readers; /* reader-table entries with a live pid and fresh heartbeat */
} printcast_ring_info;

/* Attach to the ring named `stream` (the shared-memory object name without the leading '/',
 * e.g. "printcast-h264" for /dev/shm/printcast-h264) and register in its reader table. The first
 * frame printcast_ring_next returns is the newest keyframe still in the ring or, if there is
 * none, the next one published (a keyframe is requested then).
 * Returns OK (and *out), E_INVALID, E_NOENT, E_FORMAT, E_BUSY, E_SYSTEM (errno set). */
int printcast_ring_open(const char* stream, printcast_ring** out);

/* Copy the next frame into buf (capacity bytes) and describe it in *frame, waiting up to
 * timeout_ms (0 = do not wait, negative = wait forever) for one to be published.
 * Returns OK, TIMEOUT, OVERWRITTEN (nothing copied; the next OK is a keyframe), RESTARTED
 * (nothing copied; the next OK is a keyframe of the new ring), E_TOOSMALL, E_INVALID,
 * E_SYSTEM. While the producer is gone the call returns TIMEOUT and keeps looking for a new
 * ring by name; a new producer's ring then yields RESTARTED. */
int printcast_ring_next(printcast_ring* ring, void* buf, size_t capacity, printcast_ring_frame* frame,
                        int timeout_ms);

/* Ask the producer for a keyframe (an IDR) soon. Returns OK or E_INVALID. */
int printcast_ring_request_keyframe(printcast_ring* ring);

/* Describe the ring the handle is attached to. Returns OK or E_INVALID. */
int printcast_ring_get_info(printcast_ring* ring, printcast_ring_info* info);

/* Leave the reader table and unmap. NULL is ignored. */
void printcast_ring_close(printcast_ring* ring);

/* A short English description of a return code ("frames were overwritten", ...). */
const char* printcast_ring_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* PRINTCAST_RING_H */
