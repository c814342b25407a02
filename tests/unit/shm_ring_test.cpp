// SPDX-License-Identifier: MIT
// The shared-memory ring: ShmRing (producer) against the C reader API, in one process and across
// reader processes (4 fast + 1 slow, SIGKILL), and the example consumer on real x264 output.
#include "printcast/transport/shm_ring.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/frame.h"
#include "printcast_ring.h"

extern char** environ;

using namespace std::chrono_literals;
using printcast::hal::Errc;
using printcast::hal::Packet;
using printcast::hal::PacketPtr;
using printcast::transport::ShmRing;
namespace fourcc = printcast::hal::fourcc;

namespace {

std::string uniqueName() {
  static std::atomic<int> n{0};
  return "printcast-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// A frame whose bytes encode its sequence (ring_test_reader.c checks the same rule).
PacketPtr makeFrame(uint64_t sequence, size_t length, bool keyframe,
                    printcast::hal::FourCC codec = fourcc::kH264) {
  auto p = std::make_shared<Packet>();
  p->codec = codec;
  p->keyframe = keyframe;
  p->data.resize(length);
  for (size_t i = 0; i < length; ++i) p->data[i] = static_cast<uint8_t>((sequence * 31 + i) & 0xff);
  p->pts = printcast::hal::Timestamp(std::chrono::milliseconds(1000 + sequence));
  p->sequence = sequence;
  p->size = {320, 240};
  return p;
}

bool contentOk(const std::vector<uint8_t>& buf, const printcast_ring_frame& f) {
  for (uint32_t i = 0; i < f.length; ++i)
    if (buf[i] != static_cast<uint8_t>((f.sequence * 31 + i) & 0xff)) return false;
  return true;
}

std::unique_ptr<ShmRing> makeRing(const std::string& name, size_t capacity = 1 << 20, uint32_t slots = 16,
                                  printcast::hal::FourCC codec = fourcc::kH264) {
  auto ring = ShmRing::create({name, codec, capacity, slots, 32});
  EXPECT_TRUE(ring.ok()) << ring.error().describe();
  return ring.ok() ? std::move(*ring) : nullptr;
}

// An attached reader handle that closes itself.
struct Reader {
  printcast_ring* ring = nullptr;
  explicit Reader(const std::string& name) { rc = printcast_ring_open(name.c_str(), &ring); }
  ~Reader() { printcast_ring_close(ring); }
  int next(std::vector<uint8_t>& buf, printcast_ring_frame& f, int timeoutMs = 0) {
    return printcast_ring_next(ring, buf.data(), buf.size(), &f, timeoutMs);
  }
  int rc = 0;
};

template <typename F>
bool waitFor(F condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace

TEST(ShmRing, CreateRejectsBadArgumentsNamingThem) {
  struct Case {
    ShmRing::Config config;
    std::string expect;
  };
  const std::string name = uniqueName();
  const std::vector<Case> cases = {
      {{"", fourcc::kH264, 1 << 20, 16, 32}, "ring name ''"},
      {{"a/b", fourcc::kH264, 1 << 20, 16, 32}, "ring name 'a/b'"},
      {{name, fourcc::kI420, 1 << 20, 16, 32}, "codec YU12"},
      {{name, fourcc::kH264, 1000, 16, 32}, "data capacity 1000"},
      {{name, fourcc::kH264, 1 << 20, 1, 32}, "slot count 1"},
      {{name, fourcc::kH264, 1 << 20, 16, 0}, "reader count 0"},
  };
  for (const auto& c : cases) {
    auto r = ShmRing::create(c.config);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), Errc::InvalidArgument);
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << r.error().message;
  }
}

TEST(ShmRing, OpenReportsMissingForeignAndHalfCreatedObjects) {
  printcast_ring* r = nullptr;
  EXPECT_EQ(printcast_ring_open(uniqueName().c_str(), &r), PRINTCAST_RING_E_NOENT);
  EXPECT_EQ(printcast_ring_open("../etc", &r), PRINTCAST_RING_E_INVALID);
  EXPECT_EQ(printcast_ring_open(nullptr, &r), PRINTCAST_RING_E_INVALID);
  // Another program's object, and one whose magic is not written yet.
  const std::string name = uniqueName();
  const int fd = shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  EXPECT_EQ(printcast_ring_open(name.c_str(), &r), PRINTCAST_RING_E_NOENT);  // all zero: being created
  const uint32_t foreign = 0x12345678;
  ASSERT_EQ(pwrite(fd, &foreign, 4, 0), 4);
  EXPECT_EQ(printcast_ring_open(name.c_str(), &r), PRINTCAST_RING_E_FORMAT);
  close(fd);
  shm_unlink(("/" + name).c_str());
  EXPECT_EQ(r, nullptr);
}

TEST(ShmRing, DeliversEveryFrameInOrderWithItsFields) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  Reader reader(name);
  ASSERT_EQ(reader.rc, PRINTCAST_RING_OK);
  std::vector<uint8_t> buf(1 << 20);
  printcast_ring_frame f{};
  EXPECT_EQ(reader.next(buf, f, 0), PRINTCAST_RING_TIMEOUT);
  for (uint64_t s = 1; s <= 40; ++s) {
    ASSERT_TRUE(ring->publish(makeFrame(s, 1000 + s, s % 10 == 1)));
    ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
    EXPECT_EQ(f.sequence, s);
    EXPECT_EQ(f.length, 1000 + s);
    EXPECT_EQ((f.flags & PRINTCAST_RING_KEYFRAME) != 0, s % 10 == 1);
    EXPECT_EQ(f.pts_ns, static_cast<int64_t>((1000 + s) * 1000000));
    EXPECT_EQ(f.width, 320u);
    EXPECT_EQ(f.height, 240u);
    EXPECT_EQ(f.codec, PRINTCAST_RING_CODEC_H264);
    EXPECT_EQ(f.lost, 0u);
    EXPECT_TRUE(contentOk(buf, f));
  }
  EXPECT_EQ(ring->stats().framesPublished, 40u);
}

TEST(ShmRing, DataAreaWrapsWithoutTearingFrames) {
  const std::string name = uniqueName();
  auto ring = makeRing(name, 64 << 10, 8);
  Reader reader(name);
  std::vector<uint8_t> buf(64 << 10);
  printcast_ring_frame f{};
  // Odd sizes so frames land at every offset and some would cross the end (they start over).
  for (uint64_t s = 1; s <= 200; ++s) {
    ASSERT_TRUE(ring->publish(makeFrame(s, 7000 + (s * 977) % 9000, s == 1)));
    ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK) << s;
    ASSERT_EQ(f.sequence, s);
    ASSERT_TRUE(contentOk(buf, f)) << s;
  }
}

TEST(ShmRing, SlotOverwriteIsReportedThenReadingResumesAtTheNewestKeyframe) {
  const std::string name = uniqueName();
  auto ring = makeRing(name, 1 << 20, 16);
  Reader reader(name);
  std::vector<uint8_t> buf(1 << 20);
  printcast_ring_frame f{};
  ASSERT_TRUE(ring->publish(makeFrame(1, 100, true)));
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  // 40 more while the reader sleeps: keyframes at 11, 21, 31, 41 -> slots hold 26..41.
  for (uint64_t s = 2; s <= 41; ++s) ASSERT_TRUE(ring->publish(makeFrame(s, 100, s % 10 == 1)));
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OVERWRITTEN);
  EXPECT_EQ(f.sequence, 2u);
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  EXPECT_EQ(f.sequence, 41u);
  EXPECT_TRUE(f.flags & PRINTCAST_RING_KEYFRAME);
  EXPECT_EQ(f.lost, 39u);
}

TEST(ShmRing, ReclaimedBytesCountAsOverwrittenEvenWithSlotsLeft) {
  const std::string name = uniqueName();
  auto ring = makeRing(name, 64 << 10, 64);  // 64 slots, but only two 30 KiB frames fit
  Reader reader(name);
  std::vector<uint8_t> buf(64 << 10);
  printcast_ring_frame f{};
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_TIMEOUT);  // now it waits for frame 1
  for (uint64_t s = 1; s <= 4; ++s) ASSERT_TRUE(ring->publish(makeFrame(s, 30 << 10, true)));
  // Frame 1 is still in its slot, but its bytes were reused by frame 3.
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OVERWRITTEN);
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  EXPECT_EQ(f.sequence, 4u);
  EXPECT_TRUE(contentOk(buf, f));
}

TEST(ShmRing, SeqlockHeldOddMeansTheSlotIsBeingRewritten) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  Reader reader(name);
  std::vector<uint8_t> buf(1 << 20);
  printcast_ring_frame f{};
  ASSERT_TRUE(ring->publish(makeFrame(1, 100, true)));
  ASSERT_TRUE(ring->publish(makeFrame(2, 100, false)));
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  // Act as a producer caught mid-write of slot 2 (lock odd).
  const int fd = shm_open(("/" + name).c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  ASSERT_NE(p, MAP_FAILED);
  auto* base = static_cast<uint8_t*>(p);
  auto* h = static_cast<printcast_ring_header*>(static_cast<void*>(base));
  auto* slot =
      static_cast<printcast_ring_slot*>(static_cast<void*>(base + h->slots_offset)) + 2 % h->slot_count;
  slot->lock += 1;
  EXPECT_EQ(reader.next(buf, f), PRINTCAST_RING_OVERWRITTEN);
  slot->lock += 1;
  munmap(p, static_cast<size_t>(st.st_size));
}

TEST(ShmRing, ProducerRestartIsSeenAndReadingResumesAtAKeyframe) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  Reader reader(name);
  std::vector<uint8_t> buf(1 << 20);
  printcast_ring_frame f{};
  ASSERT_TRUE(ring->publish(makeFrame(1, 100, true)));
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  EXPECT_EQ(f.generation, 1u);
  // A new producer replaces the ring while the old one still runs (as after a crash).
  auto second = makeRing(name);
  ASSERT_EQ(second->stats().generation, 2u);
  ASSERT_EQ(reader.next(buf, f, 1000), PRINTCAST_RING_RESTARTED);
  EXPECT_EQ(f.generation, 2u);
  ASSERT_TRUE(second->publish(makeFrame(1, 50, false)));  // not a keyframe: skipped
  ASSERT_TRUE(second->publish(makeFrame(2, 60, true)));
  ASSERT_EQ(reader.next(buf, f, 1000), PRINTCAST_RING_OK);
  EXPECT_EQ(f.sequence, 2u);
  EXPECT_TRUE(f.flags & PRINTCAST_RING_KEYFRAME);
  EXPECT_EQ(f.generation, 2u);
  // The old producer going away does not unlink the new ring.
  ring.reset();
  Reader another(name);
  EXPECT_EQ(another.rc, PRINTCAST_RING_OK);
}

TEST(ShmRing, ReaderFindsANewRingEvenWhenTheOldOneWasNotRetired) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  Reader reader(name);
  std::vector<uint8_t> buf(1 << 20);
  printcast_ring_frame f{};
  // A producer that died without retiring its ring, and someone removed the name.
  ASSERT_EQ(shm_unlink(("/" + name).c_str()), 0);
  auto second = makeRing(name);
  const auto start = std::chrono::steady_clock::now();
  int rc = PRINTCAST_RING_TIMEOUT;
  while (rc == PRINTCAST_RING_TIMEOUT && std::chrono::steady_clock::now() - start < 5s)
    rc = reader.next(buf, f, 200);
  EXPECT_EQ(rc, PRINTCAST_RING_RESTARTED);
}

TEST(ShmRing, OversizeEmptyAndWrongCodecPacketsAreRejected) {
  const std::string name = uniqueName();
  auto ring = makeRing(name, 64 << 10, 8);
  EXPECT_EQ(ring->maxFrameSize(), 32u << 10);
  auto big = ring->publish(makeFrame(1, (32 << 10) + 1, true));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.code(), Errc::InvalidArgument);
  EXPECT_NE(big.error().message.find("larger than the ring's limit"), std::string::npos);
  EXPECT_FALSE(ring->publish(nullptr).ok());
  EXPECT_FALSE(ring->publish(makeFrame(1, 0, true)).ok());
  EXPECT_FALSE(ring->publish(makeFrame(1, 10, true, fourcc::kMJPEG)).ok());
  EXPECT_TRUE(ring->publish(makeFrame(1, 32 << 10, true)).ok());
  EXPECT_EQ(ring->stats().framesRejected, 4u);
  EXPECT_EQ(ring->stats().framesPublished, 1u);
}

TEST(ShmRing, SmallBufferGetsTheNeededSizeAndTheFrameStaysNext) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  Reader reader(name);
  printcast_ring_frame f{};
  ASSERT_TRUE(ring->publish(makeFrame(1, 5000, true)));
  std::vector<uint8_t> small(100);
  ASSERT_EQ(reader.next(small, f), PRINTCAST_RING_E_TOOSMALL);
  EXPECT_EQ(f.length, 5000u);
  std::vector<uint8_t> buf(5000);
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  EXPECT_EQ(f.sequence, 1u);
  EXPECT_TRUE(contentOk(buf, f));
  EXPECT_EQ(printcast_ring_next(reader.ring, nullptr, 10, &f, 0), PRINTCAST_RING_E_INVALID);
}

TEST(ShmRing, KeyframeRequestsAreSeenOncePerRequest) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  EXPECT_FALSE(ring->keyframeRequested());
  ASSERT_TRUE(ring->publish(makeFrame(1, 100, true)));
  Reader reader(name);  // a keyframe is in the ring: opening asks for nothing
  std::vector<uint8_t> buf(1 << 20);
  printcast_ring_frame f{};
  ASSERT_EQ(reader.next(buf, f), PRINTCAST_RING_OK);
  EXPECT_FALSE(ring->keyframeRequested());
  ASSERT_EQ(printcast_ring_request_keyframe(reader.ring), PRINTCAST_RING_OK);
  EXPECT_TRUE(ring->keyframeRequested());
  EXPECT_FALSE(ring->keyframeRequested());
  // A reader starting with no keyframe in the ring asks for one by itself.
  ASSERT_TRUE(ring->publish(makeFrame(2, 100, false)));
  auto fresh = makeRing(name);  // new ring, no frames at all
  ASSERT_TRUE(fresh->publish(makeFrame(1, 100, false)));
  Reader late(name);
  EXPECT_EQ(late.next(buf, f), PRINTCAST_RING_TIMEOUT);  // skips the non-keyframe
  EXPECT_TRUE(fresh->keyframeRequested());
  EXPECT_EQ(fresh->stats().keyframeRequests, 1u);
}

TEST(ShmRing, LiveReadersCountsOpenHandlesAndIgnoresDeadOrStaleEntries) {
  const std::string name = uniqueName();
  auto ring = makeRing(name);
  EXPECT_EQ(ring->liveReaders(), 0u);
  auto a = std::make_unique<Reader>(name);
  Reader b(name);
  EXPECT_EQ(ring->liveReaders(), 2u);
  a.reset();
  EXPECT_EQ(ring->liveReaders(), 1u);
  // Tamper with b's entry: a pid that has exited, then a stale heartbeat.
  const int fd = shm_open(("/" + name).c_str(), O_RDWR, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  ASSERT_NE(p, MAP_FAILED);
  auto* base = static_cast<uint8_t*>(p);
  auto* h = static_cast<printcast_ring_header*>(static_cast<void*>(base));
  auto* table = static_cast<printcast_ring_reader_entry*>(static_cast<void*>(base + h->readers_offset));
  printcast_ring_reader_entry* mine = nullptr;
  for (uint32_t i = 0; i < h->reader_count; ++i)
    if (table[i].pid == static_cast<uint32_t>(getpid())) mine = &table[i];
  ASSERT_NE(mine, nullptr);
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  mine->pid = static_cast<uint32_t>(child);
  EXPECT_EQ(ring->liveReaders(), 0u);
  mine->pid = static_cast<uint32_t>(getpid());
  EXPECT_EQ(ring->liveReaders(), 1u);
  mine->heartbeat_ns -= int64_t{PRINTCAST_RING_READER_STALE_MS + 1000} * 1000000;
  EXPECT_EQ(ring->liveReaders(), 0u);
  munmap(p, static_cast<size_t>(st.st_size));
}

TEST(ShmRing, JpegRingDescribesItself) {
  const std::string name = uniqueName();
  auto ring = makeRing(name, 1 << 20, 8, fourcc::kMJPEG);
  ASSERT_TRUE(ring->publish(makeFrame(1, 100, true, fourcc::kMJPEG)));
  Reader reader(name);
  printcast_ring_info info{};
  ASSERT_EQ(printcast_ring_get_info(reader.ring, &info), PRINTCAST_RING_OK);
  EXPECT_EQ(info.codec, PRINTCAST_RING_CODEC_MJPEG);
  EXPECT_EQ(info.width, 320u);
  EXPECT_EQ(info.published, 1u);
  EXPECT_EQ(info.max_frame_size, 512u << 10);
  EXPECT_EQ(info.live_readers, 1u);
  EXPECT_EQ(info.producer_pid, static_cast<uint32_t>(getpid()));
}

// ------------------------------------------------------------------------------ many processes

namespace {

struct Child {
  pid_t pid = -1;
  std::string outPath;
};

Child spawn(const std::vector<std::string>& argv, const std::string& tag) {
  Child c;
  c.outPath = "/tmp/" + uniqueName() + "-" + tag + ".out";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, c.outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (posix_spawn(&c.pid, args[0], &actions, nullptr, args.data(), environ) != 0) c.pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return c;
}

// Wait for exit within `limit`; returns the exit status or -1 (and kills it) on timeout.
int reap(Child& c, std::chrono::milliseconds limit) {
  int status = 0;
  const bool done = waitFor([&] { return waitpid(c.pid, &status, WNOHANG) == c.pid; }, limit);
  if (!done) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  std::remove(path.c_str());
  return out;
}

// The reader table entry of `pid` in the ring called `name` (frames delivered so far).
class ReaderTableView {
 public:
  explicit ReaderTableView(const std::string& name) {
    const int fd = shm_open(("/" + name).c_str(), O_RDONLY, 0);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0) return;
    size_ = static_cast<size_t>(st.st_size);
    void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) base_ = static_cast<const uint8_t*>(p);
  }
  ~ReaderTableView() {
    if (base_ != nullptr) munmap(const_cast<uint8_t*>(base_), size_);
  }
  uint64_t delivered(pid_t pid) const {
    const auto* h = static_cast<const printcast_ring_header*>(static_cast<const void*>(base_));
    const auto* t =
        static_cast<const printcast_ring_reader_entry*>(static_cast<const void*>(base_ + h->readers_offset));
    for (uint32_t i = 0; i < h->reader_count; ++i)
      if (__atomic_load_n(&t[i].pid, __ATOMIC_ACQUIRE) == static_cast<uint32_t>(pid))
        return __atomic_load_n(&t[i].delivered, __ATOMIC_RELAXED);
    return UINT64_MAX / 2;  // gone: it read everything and left
  }

 private:
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

// Under qemu-user without binfmt_misc (the cross stage runs in a container) this test runs
// emulated but cannot exec other target binaries (ENOEXEC): the multi-process tests skip there
// and run natively and in the asan/tsan stages.
bool targetBinariesRun() {
  pid_t pid = -1;
  char* argv[] = {const_cast<char*>(PRINTCAST_RING_READER_BIN), nullptr};
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ) != 0) return false;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return !(WIFEXITED(status) && WEXITSTATUS(status) == 127);
}

TEST(ShmRingProcesses, FastReadersGetEveryFrameInOrderAndTheSlowOneResumesAtAKeyframe) {
  if (!targetBinariesRun())
    GTEST_SKIP() << "machine: cannot exec target binaries here (qemu-user without binfmt_misc)";
  const std::string name = uniqueName();
  constexpr uint64_t kFrames = 1500;
  constexpr uint32_t kSlots = 128;
  auto ring = makeRing(name, 4 << 20, kSlots);
  std::vector<Child> fast;
  for (int i = 0; i < 4; ++i)
    fast.push_back(spawn({PRINTCAST_RING_READER_BIN, name, std::to_string(kFrames), "0"}, "fast"));
  Child slow = spawn({PRINTCAST_RING_READER_BIN, name, std::to_string(kFrames), "20"}, "slow");
  ASSERT_TRUE(waitFor([&] { return ring->liveReaders() == 5; }, 10s)) << ring->liveReaders();
  ReaderTableView table(name);
  // One frame per 0.5 ms, keyframe every 25. The producer never waits for readers; this test
  // only holds back when a fast reader lags half the ring (a loaded CI machine), so "every
  // frame" is about the ring, not about the scheduler.
  for (uint64_t s = 1; s <= kFrames; ++s) {
    ASSERT_TRUE(ring->publish(makeFrame(s, 2000 + s % 3000, s % 25 == 1)));
    for (const auto& c : fast) {
      ASSERT_TRUE(waitFor([&] { return table.delivered(c.pid) + kSlots / 2 > s; }, 10s)) << "reader stuck";
    }
    std::this_thread::sleep_for(500us);
  }
  for (auto& c : fast) {
    ASSERT_EQ(reap(c, 20s), 0);
    const auto out = lines(c.outPath);
    ASSERT_EQ(out.size(), kFrames);
    for (uint64_t s = 1; s <= kFrames; ++s)
      ASSERT_EQ(out[s - 1], "F " + std::to_string(s) + " " + (s % 25 == 1 ? "1" : "0") + " 1");
  }
  ASSERT_EQ(reap(slow, 30s), 0);
  const auto out = lines(slow.outPath);
  size_t overwrites = 0, frames = 0;
  uint64_t last = 0;
  bool afterOverwrite = false;
  for (const auto& l : out) {
    std::istringstream in(l);
    char kind = 0;
    uint64_t seq = 0;
    in >> kind >> seq;
    if (kind == 'O') {
      ++overwrites;
      afterOverwrite = true;
      continue;
    }
    ASSERT_EQ(kind, 'F') << l;
    int key = 0, ok = 0;
    in >> key >> ok;
    ++frames;
    EXPECT_EQ(ok, 1) << l;
    EXPECT_GT(seq, last) << l;
    if (afterOverwrite) {
      EXPECT_EQ(key, 1) << "after an overwrite the slow reader resumed on " << l;
    }
    afterOverwrite = false;
    last = seq;
  }
  EXPECT_GE(overwrites, 1u);
  EXPECT_GT(frames, 3u);
  EXPECT_LT(frames, kFrames);
}

TEST(ShmRingProcesses, AReaderKilledWhileWaitingBlocksNobody) {
  if (!targetBinariesRun())
    GTEST_SKIP() << "machine: cannot exec target binaries here (qemu-user without binfmt_misc)";
  const std::string name = uniqueName();
  constexpr uint64_t kFrames = 60;
  auto ring = makeRing(name, 1 << 20, 256);
  std::vector<Child> readers;
  for (int i = 0; i < 3; ++i)
    readers.push_back(spawn({PRINTCAST_RING_READER_BIN, name, std::to_string(kFrames), "0"}, "k"));
  ASSERT_TRUE(waitFor([&] { return ring->liveReaders() == 3; }, 10s));
  for (uint64_t s = 1; s <= 10; ++s) ASSERT_TRUE(ring->publish(makeFrame(s, 500, s == 1)));
  ReaderTableView table(name);
  ASSERT_TRUE(waitFor([&] { return table.delivered(readers[0].pid) == 10; }, 10s));
  // Now it sleeps in FUTEX_WAIT: kill it there.
  ASSERT_EQ(kill(readers[0].pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(readers[0].pid, &status, 0), readers[0].pid);
  EXPECT_EQ(ring->liveReaders(), 2u);
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t s = 11; s <= kFrames; ++s) ASSERT_TRUE(ring->publish(makeFrame(s, 500, false)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  for (size_t i = 1; i < readers.size(); ++i) {
    ASSERT_EQ(reap(readers[i], 20s), 0);
    EXPECT_EQ(lines(readers[i].outPath).size(), kFrames);
  }
  std::remove(readers[0].outPath.c_str());
  // A new reader takes the dead one's place in the table.
  Reader again(name);
  EXPECT_EQ(again.rc, PRINTCAST_RING_OK);
  EXPECT_EQ(ring->liveReaders(), 1u);
}

TEST(ShmRingProcesses, ExampleConsumerWritesAnH264FileFfmpegDecodes) {
  if (!targetBinariesRun())
    GTEST_SKIP() << "machine: cannot exec target binaries here (qemu-user without binfmt_misc)";
  const std::string name = uniqueName();
  auto ring = makeRing(name, 4 << 20, 64);
  auto encoder = printcast::codecs::createX264Encoder();
  printcast::hal::EncoderConfig config;
  config.size = {320, 240};
  config.fps = 30;
  config.bitrateKbps = 800;
  config.gopFrames = 15;
  ASSERT_TRUE(encoder->configure(config));
  auto pool = printcast::hal::FramePool::create(fourcc::kI420, config.size, 2);
  ASSERT_TRUE(pool.ok());

  const std::string out = "/tmp/" + name + ".h264";
  constexpr int kWanted = 40;
  Child consumer =
      spawn({PRINTCAST_RING_CONSUMER_BIN, "-n", std::to_string(kWanted), "-t", "30", name, out}, "c");
  ASSERT_TRUE(waitFor([&] { return ring->liveReaders() == 1; }, 10s));
  int status = -2;
  for (uint64_t n = 0; n < 200 && status == -2; ++n) {
    auto w = (*pool)->acquire();
    ASSERT_TRUE(w.ok());
    for (int p = 0; p < 3; ++p) {
      const int rows = p == 0 ? 240 : 120;
      const int cols = p == 0 ? 320 : 160;
      for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x)
          w->data(p)[y * w->stride(p) + x] =
              static_cast<uint8_t>(p == 0 ? (x + y + n * 4) : 128 + (x - y) % 16);
    }
    auto frame = std::move(*w).publish(printcast::hal::Timestamp(std::chrono::milliseconds(33 * n)), n);
    if (ring->keyframeRequested()) encoder->requestKeyframe();
    auto packet = encoder->encode(frame);
    ASSERT_TRUE(packet.ok()) << packet.error().describe();
    ASSERT_TRUE(ring->publish(*packet));
    std::this_thread::sleep_for(5ms);
    int st = 0;
    if (waitpid(consumer.pid, &st, WNOHANG) == consumer.pid) status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  if (status == -2) status = reap(consumer, 10s);
  const auto report = lines(consumer.outPath);
  ASSERT_EQ(status, 0);
  ASSERT_FALSE(report.empty());
  EXPECT_NE(report[0].find("wrote 40 frames"), std::string::npos) << report[0];

  auto run = [](const std::string& cmd) {
    std::string text;
    FILE* p = popen(cmd.c_str(), "r");
    char chunk[256];
    while (p != nullptr && fgets(chunk, sizeof chunk, p) != nullptr) text += chunk;
    const int rc = p != nullptr ? pclose(p) : -1;
    return std::make_pair(rc, text);
  };
  const auto probe =
      run("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
          "stream=nb_read_frames,codec_name,width -of default=nw=1 " +
          out + " 2>&1");
  EXPECT_EQ(probe.first, 0) << probe.second;
  EXPECT_NE(probe.second.find("nb_read_frames=" + std::to_string(kWanted)), std::string::npos)
      << probe.second;
  EXPECT_NE(probe.second.find("codec_name=h264"), std::string::npos) << probe.second;
  const auto decode = run("ffmpeg -v error -f h264 -i " + out + " -f null - 2>&1");
  EXPECT_EQ(decode.first, 0);
  EXPECT_EQ(decode.second, "") << decode.second;
  std::remove(out.c_str());
}
