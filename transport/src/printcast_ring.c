/* SPDX-License-Identifier: MIT */
/* The shared-memory ring's reader side (printcast_ring.h): attach, per-reader cursor, seqlock
 * copies, futex waits, keyframe resync, restart detection. Plain C, libc only. */
#define _GNU_SOURCE
#include "printcast_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring_internal.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

enum {
  kWaitSliceNs = 500 * 1000 * 1000,     /* longest single futex wait: heartbeat and name checks */
  kRetiredPollNs = 50 * 1000 * 1000,    /* how often a reader of a retired ring looks for a new one */
  kHeartbeatEveryNs = 100 * 1000 * 1000 /* heartbeat stores at most this often */
};

/* One mapped ring object. */
typedef struct mapping {
  uint8_t* base;
  size_t size;
  dev_t dev;
  ino_t ino;
} mapping;

struct printcast_ring {
  char name[208]; /* "/" + stream */
  mapping map;
  printcast_ring_header* hdr;
  printcast_ring_slot* slots;
  printcast_ring_reader_entry* readers;
  const uint8_t* data;
  int reader_index; /* -1: not in the table */
  uint32_t generation;
  uint64_t cursor;         /* next sequence to deliver */
  int resync;              /* choose a start point before reading */
  int wait_keyframe;       /* skip frames until a keyframe */
  uint64_t last_delivered; /* sequence of the last frame delivered (0: none in this generation) */
  uint64_t lost;
  int64_t last_heartbeat_ns;
  int64_t last_name_check_ns;
};

int64_t printcast_ring_internal_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* 32-bit targets with a 64-bit time_t need futex_time64 (its timespec has 64-bit seconds). */
static long futex_call(uint32_t* word, int op, uint32_t val, const struct timespec* ts) {
#if defined(SYS_futex_time64) && (__SIZEOF_POINTER__ == 4)
  if (sizeof(ts->tv_sec) == 8) return syscall(SYS_futex_time64, word, op, val, ts, NULL, 0);
#endif
  return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

void printcast_ring_internal_wake_all(uint32_t* word) { futex_call(word, FUTEX_WAKE, INT_MAX, NULL); }

static void futex_wait(uint32_t* word, uint32_t expected, int64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  /* EAGAIN (the word moved on), EINTR and ETIMEDOUT all just mean: look again. */
  (void)futex_call(word, FUTEX_WAIT, expected, &ts);
}

int printcast_ring_internal_valid_name(const char* stream) {
  size_t n = 0;
  if (stream == NULL) return 0;
  for (; stream[n] != '\0'; ++n) {
    const char c = stream[n];
    const int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                   c == '_' || c == '-';
    if (!ok || n >= 200) return 0;
  }
  return n > 0 && !(n <= 2 && stream[0] == '.');
}

static int pid_alive(uint32_t pid) {
  if (pid == 0 || pid > (uint32_t)INT_MAX) return 0;
  return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static printcast_ring_reader_entry* reader_table(uint8_t* base) {
  const printcast_ring_header* h = (const printcast_ring_header*)(void*)base;
  return (printcast_ring_reader_entry*)(void*)(base + h->readers_offset);
}

uint32_t printcast_ring_internal_live_readers(uint8_t* base, int64_t now_ns) {
  const printcast_ring_header* h = (const printcast_ring_header*)(void*)base;
  printcast_ring_reader_entry* table = reader_table(base);
  uint32_t live = 0;
  for (uint32_t i = 0; i < h->reader_count; ++i) {
    const uint32_t pid = LOAD_ACQ(&table[i].pid);
    if (pid == 0) continue;
    const int64_t beat = LOAD_RLX(&table[i].heartbeat_ns);
    if (now_ns - beat > (int64_t)PRINTCAST_RING_READER_STALE_MS * 1000000) continue;
    if (pid_alive(pid)) ++live;
  }
  return live;
}

/* Every area inside the object, sizes as documented: else E_FORMAT. Magic not yet written
 * (object being created): E_NOENT. */
static int validate(const uint8_t* base, size_t size) {
  const printcast_ring_header* h = (const printcast_ring_header*)(const void*)base;
  if (size < PRINTCAST_RING_HEADER_SIZE) return PRINTCAST_RING_E_NOENT;
  const uint32_t magic = LOAD_ACQ(&h->magic);
  if (magic == 0) return PRINTCAST_RING_E_NOENT;
  if (magic != PRINTCAST_RING_MAGIC || h->version != PRINTCAST_RING_VERSION ||
      h->header_size != PRINTCAST_RING_HEADER_SIZE || h->slot_size != PRINTCAST_RING_SLOT_SIZE) {
    return PRINTCAST_RING_E_FORMAT;
  }
  const uint64_t end = (uint64_t)size;
  if (h->total_size > end || h->slot_count < 2 || h->slot_count > 65536 || h->reader_count == 0 ||
      h->reader_count > 4096 || h->data_capacity == 0 || h->max_frame_size == 0 ||
      h->max_frame_size > h->data_capacity || h->slots_offset < PRINTCAST_RING_HEADER_SIZE ||
      h->slots_offset % 8 != 0 || h->readers_offset % 8 != 0 ||
      h->slots_offset + (uint64_t)h->slot_count * PRINTCAST_RING_SLOT_SIZE > end ||
      h->readers_offset + (uint64_t)h->reader_count * PRINTCAST_RING_READER_ENTRY_SIZE > end ||
      h->data_offset > end || h->data_capacity > end - h->data_offset) {
    return PRINTCAST_RING_E_FORMAT;
  }
  return PRINTCAST_RING_OK;
}

/* Map and validate the object called `name`. With `unless` set, an object that is the same
 * file as `unless` is not mapped and the result is PRINTCAST_RING_TIMEOUT ("nothing new"). */
static int map_ring(const char* name, mapping* m, const mapping* unless) {
  const int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return errno == ENOENT ? PRINTCAST_RING_E_NOENT : PRINTCAST_RING_E_SYSTEM;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    return PRINTCAST_RING_E_SYSTEM;
  }
  if (unless != NULL && st.st_dev == unless->dev && st.st_ino == unless->ino) {
    close(fd);
    return PRINTCAST_RING_TIMEOUT;
  }
  if ((uint64_t)st.st_size < PRINTCAST_RING_HEADER_SIZE) {
    close(fd);
    return PRINTCAST_RING_E_NOENT; /* the producer has not sized it yet */
  }
  void* p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  close(fd);
  if (p == MAP_FAILED) {
    errno = e;
    return PRINTCAST_RING_E_SYSTEM;
  }
  const int rc = validate((const uint8_t*)p, (size_t)st.st_size);
  if (rc != PRINTCAST_RING_OK) {
    munmap(p, (size_t)st.st_size);
    return rc;
  }
  m->base = (uint8_t*)p;
  m->size = (size_t)st.st_size;
  m->dev = st.st_dev;
  m->ino = st.st_ino;
  return PRINTCAST_RING_OK;
}

/* Claim a free entry, or one whose pid is gone. */
static int register_reader(printcast_ring* r) {
  const uint32_t me = (uint32_t)getpid();
  const int64_t now = printcast_ring_internal_now_ns();
  for (uint32_t i = 0; i < r->hdr->reader_count; ++i) {
    printcast_ring_reader_entry* e = &r->readers[i];
    uint32_t pid = LOAD_ACQ(&e->pid);
    if (pid != 0 && pid_alive(pid)) continue;
    if (__atomic_compare_exchange_n(&e->pid, &pid, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      __atomic_store_n(&e->heartbeat_ns, now, __ATOMIC_RELEASE);
      STORE_RLX(&e->delivered, 0);
      STORE_RLX(&e->overwritten, 0);
      r->reader_index = (int)i;
      r->last_heartbeat_ns = now;
      return PRINTCAST_RING_OK;
    }
  }
  return PRINTCAST_RING_E_BUSY;
}

static void unregister_reader(printcast_ring* r) {
  if (r->reader_index < 0) return;
  __atomic_store_n(&r->readers[r->reader_index].pid, 0u, __ATOMIC_RELEASE);
  r->reader_index = -1;
}

static void use_mapping(printcast_ring* r, const mapping* m) {
  r->map = *m;
  r->hdr = (printcast_ring_header*)(void*)m->base;
  r->slots = (printcast_ring_slot*)(void*)(m->base + r->hdr->slots_offset);
  r->readers = (printcast_ring_reader_entry*)(void*)(m->base + r->hdr->readers_offset);
  r->data = m->base + r->hdr->data_offset;
  r->generation = r->hdr->generation;
  r->resync = 1;
  r->wait_keyframe = 0;
  r->last_delivered = 0;
}

int printcast_ring_open(const char* stream, printcast_ring** out) {
  if (out == NULL || !printcast_ring_internal_valid_name(stream)) return PRINTCAST_RING_E_INVALID;
  *out = NULL;
  printcast_ring* r = (printcast_ring*)calloc(1, sizeof *r);
  if (r == NULL) return PRINTCAST_RING_E_SYSTEM;
  r->name[0] = '/';
  strcpy(r->name + 1, stream);
  r->reader_index = -1;
  mapping m;
  int rc = map_ring(r->name, &m, NULL);
  if (rc != PRINTCAST_RING_OK) {
    const int e = errno;
    free(r);
    errno = e;
    return rc;
  }
  use_mapping(r, &m);
  rc = register_reader(r);
  if (rc != PRINTCAST_RING_OK) {
    munmap(m.base, m.size);
    free(r);
    return rc;
  }
  r->last_name_check_ns = printcast_ring_internal_now_ns();
  *out = r;
  return PRINTCAST_RING_OK;
}

void printcast_ring_close(printcast_ring* r) {
  if (r == NULL) return;
  unregister_reader(r);
  munmap(r->map.base, r->map.size);
  free(r);
}

int printcast_ring_request_keyframe(printcast_ring* r) {
  if (r == NULL) return PRINTCAST_RING_E_INVALID;
  __atomic_fetch_add(&r->hdr->keyframe_requests, 1, __ATOMIC_RELEASE);
  printcast_ring_internal_wake_all(&r->hdr->futex_word); /* harmless; lets idle producers look */
  return PRINTCAST_RING_OK;
}

int printcast_ring_get_info(printcast_ring* r, printcast_ring_info* info) {
  if (r == NULL || info == NULL) return PRINTCAST_RING_E_INVALID;
  memset(info, 0, sizeof *info);
  info->codec = r->hdr->codec;
  info->width = LOAD_RLX(&r->hdr->width);
  info->height = LOAD_RLX(&r->hdr->height);
  info->generation = r->hdr->generation;
  info->slot_count = r->hdr->slot_count;
  info->max_frame_size = r->hdr->max_frame_size;
  info->data_capacity = r->hdr->data_capacity;
  info->published = LOAD_ACQ(&r->hdr->published);
  info->producer_pid = r->hdr->producer_pid;
  info->live_readers = printcast_ring_internal_live_readers(r->map.base, printcast_ring_internal_now_ns());
  return PRINTCAST_RING_OK;
}

const char* printcast_ring_strerror(int code) {
  switch (code) {
    case PRINTCAST_RING_OK: return "ok";
    case PRINTCAST_RING_TIMEOUT: return "no frame within the timeout";
    case PRINTCAST_RING_OVERWRITTEN: return "the reader fell behind and frames were overwritten";
    case PRINTCAST_RING_RESTARTED: return "the producer restarted";
    case PRINTCAST_RING_E_INVALID: return "invalid argument";
    case PRINTCAST_RING_E_NOENT: return "no such ring (is the producer running?)";
    case PRINTCAST_RING_E_FORMAT: return "not a printcast ring of a known layout version";
    case PRINTCAST_RING_E_TOOSMALL: return "buffer smaller than the frame";
    case PRINTCAST_RING_E_SYSTEM: return "system error (see errno)";
    case PRINTCAST_RING_E_BUSY: return "the ring's reader table is full";
    default: return "unknown printcast_ring return code";
  }
}

/* Choose where to start: the newest keyframe still intact in the ring, else the next one
 * published (and ask the producer for it). */
static void resync(printcast_ring* r) {
  const printcast_ring_header* h = r->hdr;
  const uint64_t published = LOAD_ACQ(&h->published);
  const uint64_t count = h->slot_count;
  r->resync = 0;
  for (uint64_t s = published; s > 0 && s + count > published; --s) {
    const printcast_ring_slot* slot = &r->slots[s % count];
    const uint64_t l1 = LOAD_ACQ(&slot->lock);
    if (l1 & 1u) continue;
    const uint64_t seq = LOAD_RLX(&slot->sequence);
    const uint32_t flags = LOAD_RLX(&slot->flags);
    const uint64_t position = LOAD_RLX(&slot->position);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (LOAD_RLX(&slot->lock) != l1 || seq != s) continue;
    if (!(flags & PRINTCAST_RING_KEYFRAME)) continue;
    if (position < LOAD_RLX(&h->reclaimed)) break; /* older ones are reclaimed too */
    r->cursor = s;
    r->wait_keyframe = 0;
    return;
  }
  r->cursor = published + 1;
  r->wait_keyframe = 1;
  __atomic_fetch_add(&r->hdr->keyframe_requests, 1, __ATOMIC_RELEASE);
}

static void heartbeat(printcast_ring* r, int64_t now) {
  if (r->reader_index < 0 || now - r->last_heartbeat_ns < kHeartbeatEveryNs) return;
  printcast_ring_reader_entry* e = &r->readers[r->reader_index];
  if (LOAD_RLX(&e->pid) != (uint32_t)getpid()) {
    /* Taken over (we looked dead: e.g. a pid namespace change): register again. */
    r->reader_index = -1;
    (void)register_reader(r);
    return;
  }
  __atomic_store_n(&e->heartbeat_ns, now, __ATOMIC_RELEASE);
  r->last_heartbeat_ns = now;
}

/* The producer retired this object or the name now points at another one: attach to the new
 * one. Returns 1 when the handle switched rings. */
static int follow_restart(printcast_ring* r) {
  mapping m;
  if (map_ring(r->name, &m, &r->map) != PRINTCAST_RING_OK) return 0;
  unregister_reader(r);
  munmap(r->map.base, r->map.size);
  use_mapping(r, &m);
  (void)register_reader(r); /* a full table only means this reader is not counted */
  return 1;
}

static void describe(const printcast_ring* r, printcast_ring_frame* f) {
  memset(f, 0, sizeof *f);
  f->sequence = r->cursor;
  f->codec = r->hdr->codec;
  f->generation = r->generation;
  f->lost = r->lost;
}

static int overwritten(printcast_ring* r, printcast_ring_frame* f) {
  r->resync = 1;
  if (r->reader_index >= 0) __atomic_fetch_add(&r->readers[r->reader_index].overwritten, 1, __ATOMIC_RELAXED);
  describe(r, f);
  return PRINTCAST_RING_OVERWRITTEN;
}

int printcast_ring_next(printcast_ring* r, void* buf, size_t capacity, printcast_ring_frame* frame,
                        int timeout_ms) {
  if (r == NULL || frame == NULL || (buf == NULL && capacity > 0)) return PRINTCAST_RING_E_INVALID;
  int64_t now = printcast_ring_internal_now_ns();
  const int64_t deadline = timeout_ms < 0 ? INT64_MAX : now + (int64_t)timeout_ms * 1000000;
  for (;;) {
    heartbeat(r, now);
    const int retired = (LOAD_ACQ(&r->hdr->flags) & PRINTCAST_RING_RETIRED) != 0;
    const int name_check_due = now - r->last_name_check_ns >= kWaitSliceNs;
    if (retired || name_check_due) {
      r->last_name_check_ns = now;
      if (follow_restart(r)) {
        describe(r, frame);
        return PRINTCAST_RING_RESTARTED;
      }
    }
    if (r->resync) resync(r);

    printcast_ring_header* h = r->hdr;
    const uint32_t word = LOAD_ACQ(&h->futex_word);
    const uint64_t published = LOAD_ACQ(&h->published);
    if (r->cursor <= published) {
      const uint64_t count = h->slot_count;
      if (published - r->cursor >= count) return overwritten(r, frame);
      const printcast_ring_slot* slot = &r->slots[r->cursor % count];
      const uint64_t l1 = LOAD_ACQ(&slot->lock);
      const uint64_t seq = LOAD_RLX(&slot->sequence);
      if ((l1 & 1u) || seq != r->cursor) return overwritten(r, frame);
      const uint32_t flags = LOAD_RLX(&slot->flags);
      if (r->wait_keyframe && !(flags & PRINTCAST_RING_KEYFRAME)) {
        ++r->cursor; /* never hand out a frame that depends on one the reader did not get */
        continue;
      }
      const uint64_t position = LOAD_RLX(&slot->position);
      const uint32_t length = LOAD_RLX(&slot->length);
      const uint64_t offset = position % h->data_capacity;
      describe(r, frame);
      frame->pts_ns = LOAD_RLX(&slot->pts_ns);
      frame->width = LOAD_RLX(&slot->width);
      frame->height = LOAD_RLX(&slot->height);
      frame->flags = flags;
      frame->length = length;
      /* Torn values are caught by the lock check below; bounds first so a copy never leaves the
       * data area whatever was read. */
      const int fits = length > 0 && length <= h->max_frame_size && offset + length <= h->data_capacity;
      const int copy = fits && length <= capacity;
      if (copy) memcpy(buf, r->data + offset, length);
      __atomic_thread_fence(__ATOMIC_ACQUIRE);
      if (!fits || LOAD_RLX(&slot->lock) != l1 || LOAD_RLX(&h->reclaimed) > position) {
        return overwritten(r, frame);
      }
      if (!copy) return PRINTCAST_RING_E_TOOSMALL;
      if (r->last_delivered != 0 && r->cursor > r->last_delivered + 1) {
        r->lost += r->cursor - r->last_delivered - 1;
      }
      frame->lost = r->lost;
      r->last_delivered = r->cursor;
      ++r->cursor;
      r->wait_keyframe = 0;
      if (r->reader_index >= 0)
        __atomic_fetch_add(&r->readers[r->reader_index].delivered, 1, __ATOMIC_RELAXED);
      return PRINTCAST_RING_OK;
    }

    if (now >= deadline) {
      describe(r, frame);
      return PRINTCAST_RING_TIMEOUT;
    }
    int64_t wait = deadline - now;
    if (wait > kWaitSliceNs) wait = kWaitSliceNs;
    if (retired && wait > kRetiredPollNs) wait = kRetiredPollNs;
    if (!retired)
      futex_wait(&h->futex_word, word, wait);
    else {
      struct timespec ts = {0, (long)wait};
      nanosleep(&ts, NULL);
    }
    now = printcast_ring_internal_now_ns();
  }
}
