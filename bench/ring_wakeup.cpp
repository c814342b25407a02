// SPDX-License-Identifier: MIT
// Shared-memory ring wake-up latency: producer publish -> reader process returns with the frame,
// p50/p99 in microseconds with 1 and 8 reader processes, for the ring (futex on the sequence
// word, printcast_ring_next) and two peers in the same run: an eventfd per reader, and one POSIX
// semaphore shared by all readers as in reCamera's ring (each post wakes one reader: the others
// lose that wake-up, shown as "delivered").
//
//   printcast-bench-ring-wakeup [--frames N] [--interval-us U]
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "printcast/transport/shm_ring.h"
#include "printcast_ring.h"

namespace {

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Shared between the producer and the forked readers (MAP_SHARED | MAP_ANONYMOUS).
struct Shared {
  std::atomic<int64_t> publishedAt{0};  // peers: the producer's time of the newest publish
  std::atomic<uint64_t> sequence{0};
  std::atomic<int> done{0};
  std::atomic<int> ready{0};
  sem_t semaphore;
};

struct Result {
  std::vector<int64_t> latencies;  // ns, all readers together
  uint64_t delivered = 0;          // frames readers returned with
  uint64_t expected = 0;           // frames x readers
};

template <typename T>
T* sharedArray(size_t n) {
  void* p = mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return static_cast<T*>(p);
}

enum class Mechanism { Ring, EventfdPerReader, SharedSemaphore };

Result run(Mechanism mechanism, int readers, int frames, int intervalUs) {
  auto* shared = new (sharedArray<Shared>(1)) Shared();
  sem_init(&shared->semaphore, 1, 0);
  auto* latencies = sharedArray<int64_t>(static_cast<size_t>(readers) * static_cast<size_t>(frames));
  auto* counts = sharedArray<uint64_t>(static_cast<size_t>(readers));
  const std::string name = fmt::format("printcast-bench-{}", getpid());
  std::unique_ptr<printcast::transport::ShmRing> ring;
  if (mechanism == Mechanism::Ring) {
    auto r = printcast::transport::ShmRing::create({name, printcast::hal::fourcc::kH264, 1 << 20, 256, 32});
    if (!r) {
      fmt::print(stderr, "{}\n", r.error().describe());
      std::exit(1);
    }
    ring = std::move(*r);
  }
  std::vector<int> eventfds;
  for (int i = 0; i < readers; ++i) eventfds.push_back(eventfd(0, EFD_CLOEXEC));

  std::vector<pid_t> children;
  for (int i = 0; i < readers; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      int64_t* mine = latencies + static_cast<size_t>(i) * static_cast<size_t>(frames);
      uint64_t n = 0;
      if (mechanism == Mechanism::Ring) {
        printcast_ring* r = nullptr;
        if (printcast_ring_open(name.c_str(), &r) != PRINTCAST_RING_OK) _exit(1);
        shared->ready.fetch_add(1);
        std::vector<uint8_t> buf(1 << 19);
        printcast_ring_frame f{};
        while (n < static_cast<uint64_t>(frames)) {
          const int rc = printcast_ring_next(r, buf.data(), buf.size(), &f, 2000);
          if (rc == PRINTCAST_RING_TIMEOUT) break;
          if (rc != PRINTCAST_RING_OK) continue;
          const int64_t now = nowNs();
          int64_t sent = 0;
          std::memcpy(&sent, buf.data(), sizeof sent);
          mine[n++] = now - sent;
        }
        printcast_ring_close(r);
      } else {
        shared->ready.fetch_add(1);
        while (n < static_cast<uint64_t>(frames)) {
          if (mechanism == Mechanism::EventfdPerReader) {
            uint64_t v = 0;
            if (read(eventfds[static_cast<size_t>(i)], &v, sizeof v) != sizeof v) break;
          } else {
            sem_wait(&shared->semaphore);
          }
          const int64_t now = nowNs();
          if (shared->done.load()) break;
          mine[n++] = now - shared->publishedAt.load();
        }
      }
      counts[i] = n;
      _exit(0);
    }
    children.push_back(pid);
  }
  while (shared->ready.load() < readers) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (ring) {
    while (ring->liveReaders() < static_cast<uint32_t>(readers))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // every reader asleep in its wait

  auto packet = std::make_shared<printcast::hal::Packet>();
  packet->codec = printcast::hal::fourcc::kH264;
  packet->data.resize(4096);  // a small P-frame
  for (int s = 1; s <= frames; ++s) {
    packet->keyframe = s == 1;
    const int64_t t = nowNs();
    if (mechanism == Mechanism::Ring) {
      std::memcpy(packet->data.data(), &t, sizeof t);
      (void)ring->publish(packet);
    } else {
      shared->publishedAt.store(t);
      shared->sequence.store(static_cast<uint64_t>(s));
      if (mechanism == Mechanism::EventfdPerReader) {
        const uint64_t one = 1;
        for (int fd : eventfds) (void)!write(fd, &one, sizeof one);
      } else {
        sem_post(&shared->semaphore);  // reCamera: one post per frame for all readers
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(intervalUs));
  }
  shared->done.store(1);
  for (int i = 0; i < readers; ++i) {
    sem_post(&shared->semaphore);
    const uint64_t one = 1;
    (void)!write(eventfds[static_cast<size_t>(i)], &one, sizeof one);
  }
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  ring.reset();

  Result result;
  result.expected = static_cast<uint64_t>(frames) * static_cast<uint64_t>(readers);
  for (int i = 0; i < readers; ++i) {
    result.delivered += counts[i];
    const int64_t* mine = latencies + static_cast<size_t>(i) * static_cast<size_t>(frames);
    result.latencies.insert(result.latencies.end(), mine, mine + counts[i]);
  }
  for (int fd : eventfds) close(fd);
  sem_destroy(&shared->semaphore);
  munmap(shared, sizeof(Shared));
  munmap(latencies, sizeof(int64_t) * static_cast<size_t>(readers) * static_cast<size_t>(frames));
  munmap(counts, sizeof(uint64_t) * static_cast<size_t>(readers));
  return result;
}

double percentileUs(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return static_cast<double>(v[i]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Shared-memory ring wake-up latency against an eventfd per reader and a shared semaphore"};
  int frames = 1000;
  int intervalUs = 2000;
  app.add_option("--frames", frames, "frames per run")->check(CLI::Range(10, 100000));
  app.add_option("--interval-us", intervalUs, "time between frames, us")->check(CLI::Range(100, 100000));
  CLI11_PARSE(app, argc, argv);

  fmt::print(
      "ring wake-up latency: {} frames every {} us, {} cores; producer publish -> reader has the frame\n",
      frames, intervalUs, std::thread::hardware_concurrency());
  fmt::print("{:<34} {:>7} {:>9} {:>9} {:>9} {:>10}\n", "mechanism", "readers", "p50 us", "p99 us", "max us",
             "delivered");
  for (int readers : {1, 8}) {
    double ringP99 = 0;
    double eventfdP99 = 0;
    for (auto [mechanism, label] : {std::pair{Mechanism::Ring, "ring (futex, printcast_ring_next)"},
                                    {Mechanism::EventfdPerReader, "eventfd per reader"},
                                    {Mechanism::SharedSemaphore, "one shared semaphore (reCamera)"}}) {
      const Result r = run(mechanism, readers, frames, intervalUs);
      const double p99 = percentileUs(r.latencies, 0.99);
      if (mechanism == Mechanism::Ring) ringP99 = p99;
      if (mechanism == Mechanism::EventfdPerReader) eventfdP99 = p99;
      fmt::print("{:<34} {:>7} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}%\n", label, readers,
                 percentileUs(r.latencies, 0.5), p99, percentileUs(r.latencies, 1.0),
                 100.0 * static_cast<double>(r.delivered) / static_cast<double>(r.expected));
    }
    fmt::print("  {} readers: ring p99 / eventfd-per-reader p99 = {:.2f}\n", readers,
               eventfdP99 > 0 ? ringP99 / eventfdP99 : 0.0);
  }
  return 0;
}
