// SPDX-License-Identifier: MIT
// The evdev TouchInjector against a scripted fake kernel: matching, ABS scaling, protocol-B writes.
#include <fcntl.h>
#include <linux/input.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "printcast/hal/touch_evdev.h"

namespace {

using printcast::hal::Errc;
using printcast::hal::EvdevTouchConfig;
using printcast::hal::Point;
using printcast::hal::Size;
using printcast::hal::Syscalls;
using namespace std::chrono_literals;

// One evdev device as the fake kernel describes it.
struct FakeInputDevice {
  std::string name;
  bool direct = false;  // INPUT_PROP_DIRECT
  bool multiTouch =
      false;  // EV_ABS + ABS_MT_SLOT/TRACKING_ID/POSITION_X/Y/TOUCH_MAJOR/PRESSURE, EV_KEY BTN_TOUCH
  input_absinfo x{0, 0, 4095, 0, 0, 0};
  input_absinfo y{0, 0, 4095, 0, 0, 0};
  input_absinfo slot{0, 0, 9, 0, 0, 0};
  input_absinfo trackingId{0, 0, 65535, 0, 0, 0};
  bool accessible = true;
};

struct Written {
  std::string node;
  uint16_t type, code;
  int32_t value;
  std::chrono::steady_clock::time_point when;
};

// The input core: evdev nodes in a temporary folder (the injector lists it), EVIOCG* ioctls
// answered from FakeInputDevice, writes parsed into `written`.
class FakeInputKernel final : public Syscalls {
 public:
  FakeInputKernel() {
    dir = std::filesystem::temp_directory_path() /
          ("printcast-touch-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir);
  }
  ~FakeInputKernel() override { std::filesystem::remove_all(dir); }
  FakeInputKernel(const FakeInputKernel&) = delete;
  FakeInputKernel& operator=(const FakeInputKernel&) = delete;

  void add(const std::string& nodeName, FakeInputDevice device) {
    std::ofstream(dir / nodeName).put('\0');  // the listing only needs the name
    devices[(dir / nodeName).string()] = std::move(device);
  }
  std::string path(const std::string& nodeName) const { return (dir / nodeName).string(); }
  EvdevTouchConfig config(std::string name, Size range = {}) const {
    return EvdevTouchConfig{std::move(name), range, dir.string()};
  }

  std::filesystem::path dir;
  std::map<std::string, FakeInputDevice> devices;
  std::map<int, std::pair<std::string, int>> openFds;  // fd -> node, flags
  std::vector<Written> written;
  int writeOpenErrno = 0;  // open() for writing fails with this (reading still works)
  int writeErrno = 0;
  int writeCalls = 0;
  std::vector<size_t> writeLimits;  // each write() takes at most the next of these bytes (then all)
  std::vector<int> writeErrnos;     // each write() fails with the next of these first (0 = no)

  int open(const char* path, int flags) override {
    auto it = devices.find(path);
    if (it == devices.end()) return fail(ENOENT);
    if (!it->second.accessible) return fail(EACCES);
    if (writeOpenErrno != 0 && (flags & O_ACCMODE) != O_RDONLY) return fail(writeOpenErrno);
    const int fd = nextFd_++;
    openFds[fd] = {path, flags};
    return fd;
  }
  int close(int fd) override { return openFds.erase(fd) == 1 ? 0 : fail(EBADF); }

  int ioctl(int fd, unsigned long request, void* arg) override {  // NOLINT(google-runtime-int)
    auto it = openFds.find(fd);
    if (it == openFds.end()) return fail(EBADF);
    const FakeInputDevice& d = devices.at(it->second.first);
    if (_IOC_TYPE(request) != 'E' || _IOC_DIR(request) != _IOC_READ) return fail(ENOTTY);
    const unsigned nr = _IOC_NR(request);
    const size_t len = _IOC_SIZE(request);
    auto* out = static_cast<uint8_t*>(arg);
    auto setBit = [&](unsigned bit) {
      if (bit / 8 < len) out[bit / 8] |= static_cast<uint8_t>(1U << (bit % 8));
    };
    if (nr == _IOC_NR(EVIOCGNAME(0))) {
      const size_t n = std::min(len, d.name.size() + 1);
      std::memcpy(out, d.name.c_str(), n);
      return static_cast<int>(n);
    }
    if (nr == _IOC_NR(EVIOCGPROP(0))) {
      std::memset(out, 0, len);
      if (d.direct) setBit(INPUT_PROP_DIRECT);
      return static_cast<int>(len);
    }
    if (nr == _IOC_NR(EVIOCGBIT(0, 0))) {  // EV_* types
      std::memset(out, 0, len);
      setBit(EV_SYN);
      setBit(EV_KEY);
      if (d.multiTouch) setBit(EV_ABS);
      return static_cast<int>(len);
    }
    if (nr == _IOC_NR(EVIOCGBIT(EV_ABS, 0))) {
      std::memset(out, 0, len);
      if (d.multiTouch) {
        for (unsigned code : {ABS_X, ABS_Y, ABS_MT_SLOT, ABS_MT_TRACKING_ID, ABS_MT_POSITION_X,
                              ABS_MT_POSITION_Y, ABS_MT_TOUCH_MAJOR, ABS_MT_PRESSURE}) {
          setBit(code);
        }
      }
      return static_cast<int>(len);
    }
    if (nr >= _IOC_NR(EVIOCGABS(0)) && nr < _IOC_NR(EVIOCGABS(0)) + ABS_CNT && len == sizeof(input_absinfo)) {
      const unsigned code = nr - _IOC_NR(EVIOCGABS(0));
      if (!d.multiTouch) return fail(EINVAL);
      const input_absinfo* info = code == ABS_MT_POSITION_X || code == ABS_X   ? &d.x
                                  : code == ABS_MT_POSITION_Y || code == ABS_Y ? &d.y
                                  : code == ABS_MT_SLOT                        ? &d.slot
                                  : code == ABS_MT_TRACKING_ID                 ? &d.trackingId
                                                                               : nullptr;
      if (info == nullptr) return fail(EINVAL);
      std::memcpy(out, info, sizeof *info);
      return 0;
    }
    return fail(ENOTTY);
  }

  void* mmap(void* /*addr*/, size_t /*length*/, int /*prot*/, int /*flags*/, int /*fd*/,
             off_t /*offset*/) override {
    errno = ENODEV;
    return reinterpret_cast<void*>(-1);  // NOLINT: MAP_FAILED
  }
  int munmap(void* /*addr*/, size_t /*length*/) override { return fail(EINVAL); }
  int poll(pollfd* /*fds*/, nfds_t /*count*/, int /*timeoutMs*/) override { return fail(ENOSYS); }
  ssize_t read(int /*fd*/, void* /*buf*/, size_t /*count*/) override { return fail(ENOSYS); }

  ssize_t write(int fd, const void* buf, size_t count) override {
    ++writeCalls;
    auto it = openFds.find(fd);
    if (it == openFds.end()) return fail(EBADF);
    if ((it->second.second & O_ACCMODE) == O_RDONLY) return fail(EBADF);
    if (writeErrno != 0) return fail(writeErrno);
    if (!writeErrnos.empty()) {
      const int e = writeErrnos.front();
      writeErrnos.erase(writeErrnos.begin());
      if (e != 0) return fail(e);
    }
    if (count % sizeof(input_event) != 0) return fail(EINVAL);
    if (!writeLimits.empty()) {  // a short write: only the first bytes are taken
      count = std::min(count, writeLimits.front());
      writeLimits.erase(writeLimits.begin());
    }
    const auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < count / sizeof(input_event); ++i) {  // whole events only
      input_event e{};
      std::memcpy(&e, static_cast<const uint8_t*>(buf) + i * sizeof e, sizeof e);
      written.push_back({it->second.first, e.type, e.code, e.value, now});
    }
    return static_cast<ssize_t>(count);
  }

 private:
  static int fail(int e) {
    errno = e;
    return -1;
  }
  static inline int counter_ = 0;
  int nextFd_ = 200;
};

struct Ev {
  uint16_t type, code;
  int32_t value;
  bool operator==(const Ev&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << e.type << "," << e.code << "," << e.value << "}";
}

std::vector<Ev> events(const std::vector<Written>& w, size_t from = 0, size_t count = SIZE_MAX) {
  std::vector<Ev> out;
  for (size_t i = from; i < w.size() && out.size() < count; ++i)
    out.push_back({w[i].type, w[i].code, w[i].value});
  return out;
}

std::vector<Ev> down(int id, int x, int y) {
  return {{EV_ABS, ABS_MT_SLOT, 0},       {EV_ABS, ABS_MT_TRACKING_ID, id}, {EV_ABS, ABS_MT_POSITION_X, x},
          {EV_ABS, ABS_MT_POSITION_Y, y}, {EV_ABS, ABS_MT_TOUCH_MAJOR, 50}, {EV_ABS, ABS_MT_PRESSURE, 100},
          {EV_KEY, BTN_TOUCH, 1},         {EV_SYN, SYN_REPORT, 0}};
}
const std::vector<Ev> kUp = {
    {EV_ABS, ABS_MT_TRACKING_ID, -1}, {EV_KEY, BTN_TOUCH, 0}, {EV_SYN, SYN_REPORT, 0}};

// A printer-like machine: buttons, a touchpad, the panel, and a second touchscreen.
void populate(FakeInputKernel& k) {
  k.add("event0", FakeInputDevice{.name = "gpio-keys"});
  k.add("event1", FakeInputDevice{.name = "Synaptics TouchPad", .direct = false, .multiTouch = true});
  k.add("event2", FakeInputDevice{.name = "hyn_ts", .direct = true, .multiTouch = true});
  k.add("event10", FakeInputDevice{.name = "other_ts", .direct = true, .multiTouch = true});
  k.add("mice", FakeInputDevice{.name = "not an event node", .direct = true, .multiTouch = true});
}

TEST(EvdevTouch, FindsThePanelByNameAmongSeveralNodes) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("other_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok()) << touch.error().describe();
  EXPECT_EQ((*touch)->info().name, "other_ts");
  EXPECT_EQ((*touch)->info().range, (Size{800, 480}));
  EXPECT_EQ((*touch)->info().slots, 10);
  // Probing closed every node it opened; the injector keeps exactly one, write-only.
  ASSERT_EQ(k.openFds.size(), 1u);
  EXPECT_EQ(k.openFds.begin()->second.first, k.path("event10"));
  EXPECT_EQ(k.openFds.begin()->second.second & O_ACCMODE, O_WRONLY);
  ASSERT_TRUE((*touch)->tap(Point{0, 0}, 0ms).ok());
  ASSERT_FALSE(k.written.empty());
  for (const Written& w : k.written) EXPECT_EQ(w.node, k.path("event10"));
}

TEST(EvdevTouch, TapWritesTheProtocolBSequenceScaledToTheAbsRange) {
  FakeInputKernel k;
  populate(k);
  // The board's panel range is 800x480, the device reports 0..4095 on both axes.
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok()) << touch.error().describe();
  const auto start = std::chrono::steady_clock::now();
  size_t writtenAtPress = 0;
  ASSERT_TRUE((*touch)->tap(Point{200, 120}, 30ms, [&] { writtenAtPress = k.written.size(); }).ok());
  EXPECT_EQ(writtenAtPress, 8u) << "the press is reported after the down report, before the hold";
  // 200 * 4095 / 800 = 1023.75 -> 1024; 120 * 4095 / 480 = 1023.75 -> 1024.
  std::vector<Ev> expected = down(1, 1024, 1024);
  expected.insert(expected.end(), kUp.begin(), kUp.end());
  EXPECT_EQ(events(k.written), expected);
  EXPECT_EQ(k.writeCalls, 2) << "one write() per report";
  // The hold lies between the down and up reports.
  ASSERT_EQ(k.written.size(), 11u);
  EXPECT_GE(k.written[8].when - k.written[7].when, 30ms);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);

  // The corners reach the ends of the ABS range; tracking ids go up with every gesture.
  k.written.clear();
  ASSERT_TRUE((*touch)->tap(Point{800, 480}, 0ms).ok());
  ASSERT_TRUE((*touch)->tap(Point{0, 480}, 0ms).ok());
  EXPECT_EQ(events(k.written, 0, 8), down(2, 4095, 4095));
  EXPECT_EQ(events(k.written, 11, 8), down(3, 0, 4095));
}

TEST(EvdevTouch, AbsRangeWithAnOffsetMinimum) {
  FakeInputKernel k;
  k.add("event0", FakeInputDevice{.name = "panel",
                                  .direct = true,
                                  .multiTouch = true,
                                  .x = {0, 100, 1123, 0, 0, 0},
                                  .y = {0, -50, 50, 0, 0, 0}});
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("panel", {1024, 100}), k);
  ASSERT_TRUE(touch.ok()) << touch.error().describe();
  ASSERT_TRUE((*touch)->tap(Point{512, 25}, 0ms).ok());
  EXPECT_EQ(events(k.written, 0, 8), down(1, 100 + 1023 / 2 + 1, -50 + 25));  // 511.5 rounds to 512
}

TEST(EvdevTouch, WithoutABoardRangeTheAbsExtentIsTheRange) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts"), k);
  ASSERT_TRUE(touch.ok()) << touch.error().describe();
  EXPECT_EQ((*touch)->info().range, (Size{4095, 4095}));
  ASSERT_TRUE((*touch)->tap(Point{1234, 4095}, 0ms).ok());
  EXPECT_EQ(events(k.written, 0, 8), down(1, 1234, 4095));
}

TEST(EvdevTouch, SwipeIsDownMovesUp) {
  FakeInputKernel k;
  k.add("event0", FakeInputDevice{.name = "hyn_ts",
                                  .direct = true,
                                  .multiTouch = true,
                                  .x = {0, 0, 800, 0, 0, 0},
                                  .y = {0, 0, 480, 0, 0, 0}});
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok()) << touch.error().describe();
  ASSERT_TRUE((*touch)->swipe(Point{100, 400}, Point{500, 100}, 40ms, 4).ok());
  std::vector<Ev> expected = down(1, 100, 400);
  for (int i = 1; i <= 4; ++i) {
    expected.push_back({EV_ABS, ABS_MT_POSITION_X, 100 + 400 * i / 4});
    expected.push_back({EV_ABS, ABS_MT_POSITION_Y, 400 - 300 * i / 4});
    expected.push_back({EV_SYN, SYN_REPORT, 0});
  }
  expected.insert(expected.end(), kUp.begin(), kUp.end());
  EXPECT_EQ(events(k.written), expected);
  EXPECT_GE(k.written.back().when - k.written.front().when, 40ms);

  EXPECT_EQ((*touch)->swipe(Point{0, 0}, Point{1, 1}, 10ms, 0).code(), Errc::InvalidArgument);
  EXPECT_EQ((*touch)->swipe(Point{0, 0}, Point{801, 1}, 10ms, 2).code(), Errc::InvalidArgument);
}

TEST(EvdevTouch, WithoutANameTheFirstTouchscreenIsUsedNotTheTouchpad) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config(""), k);
  ASSERT_TRUE(touch.ok()) << touch.error().describe();
  EXPECT_EQ((*touch)->info().name, "hyn_ts");  // event2 comes before event10; event1 is a touchpad
}

TEST(EvdevTouch, NoMatchListsWhatWasSeen) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("gt911", {800, 480}), k);
  ASSERT_FALSE(touch.ok());
  EXPECT_EQ(touch.code(), Errc::NoDevice);
  EXPECT_NE(touch.error().message.find("gt911"), std::string::npos) << touch.error().message;
  EXPECT_NE(touch.error().message.find("hyn_ts"), std::string::npos) << touch.error().message;
  EXPECT_TRUE(k.openFds.empty());

  // A device of that name without multi-touch axes is not the panel.
  auto keys = printcast::hal::createEvdevTouchInjector(k.config("gpio-keys"), k);
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.code(), Errc::NoDevice);

  FakeInputKernel empty;
  auto none = printcast::hal::createEvdevTouchInjector(empty.config(""), empty);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.code(), Errc::NoDevice);
}

TEST(EvdevTouch, UnreadableNodesArePermissionDenied) {
  FakeInputKernel k;
  k.add("event0", FakeInputDevice{.name = "hyn_ts", .direct = true, .multiTouch = true, .accessible = false});
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts"), k);
  ASSERT_FALSE(touch.ok());
  EXPECT_EQ(touch.code(), Errc::PermissionDenied);
  EXPECT_NE(touch.error().message.find("input"), std::string::npos) << touch.error().message;
}

TEST(EvdevTouch, EnodevIsDisconnectedForGood) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok());
  k.writeErrno = ENODEV;
  auto st = (*touch)->tap(Point{10, 10}, 0ms);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::Disconnected);
  k.writeErrno = 0;
  const int calls = k.writeCalls;
  auto again = (*touch)->tap(Point{10, 10}, 0ms);
  EXPECT_EQ(again.code(), Errc::Disconnected);
  EXPECT_EQ(k.writeCalls, calls) << "a dead injector writes nothing";

  k.writeErrno = EIO;
  auto other = printcast::hal::createEvdevTouchInjector(k.config("other_ts", {800, 480}), k);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->tap(Point{1, 1}, 0ms).code(), Errc::Io);
}

TEST(EvdevTouch, ShortWriteOfWholeEventsResumesWithTheRest) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok());
  k.writeLimits = {3 * sizeof(input_event), sizeof(input_event)};  // 3 events, then 1, then the rest
  k.writeErrnos = {EINTR};                                         // and an interrupted call first
  ASSERT_TRUE((*touch)->tap(Point{400, 240}, 0ms).ok());
  FakeInputKernel reference;  // the same tap written whole
  populate(reference);
  auto whole = printcast::hal::createEvdevTouchInjector(reference.config("hyn_ts", {800, 480}), reference);
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE((*whole)->tap(Point{400, 240}, 0ms).ok());
  EXPECT_EQ(events(k.written), events(reference.written)) << "nothing lost, nothing repeated";
  EXPECT_EQ(k.written.size(), 11u);
}

TEST(EvdevTouch, ShortWriteInsideAnEventIsAnError) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok());
  k.writeLimits = {sizeof(input_event) + 4};  // a torn event: never silently accepted
  auto st = (*touch)->tap(Point{400, 240}, 0ms);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::Io);
  EXPECT_NE(st.error().message.find("short write"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find(k.path("event2")), std::string::npos) << st.error().message;

  k.writeLimits = {0};  // write() returning 0 would loop forever if it were retried
  EXPECT_EQ((*touch)->tap(Point{400, 240}, 0ms).code(), Errc::Io);
}

TEST(EvdevTouch, AgainAndBusyFromWriteAreReportedNotRetriedForever) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok());
  k.writeErrnos = {EAGAIN};
  auto again = (*touch)->tap(Point{1, 1}, 0ms);
  EXPECT_EQ(again.code(), Errc::Again);
  EXPECT_NE(again.error().message.find("hyn_ts"), std::string::npos) << again.error().message;
  k.writeErrnos = {EBUSY};
  auto busy = (*touch)->tap(Point{1, 1}, 0ms);
  EXPECT_EQ(busy.code(), Errc::Busy);
  EXPECT_NE(busy.error().message.find(k.path("event2")), std::string::npos) << busy.error().message;
  EXPECT_TRUE((*touch)->tap(Point{1, 1}, 0ms).ok()) << "neither is fatal: the next tap goes through";
}

TEST(EvdevTouch, BusyPanelAtOpenForWritingIsBusyAndNamed) {
  FakeInputKernel k;
  populate(k);
  k.writeOpenErrno = EBUSY;
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_FALSE(touch.ok());
  EXPECT_EQ(touch.code(), Errc::Busy) << touch.error().describe();
  EXPECT_NE(touch.error().message.find(k.path("event2")), std::string::npos) << touch.error().message;
  EXPECT_NE(touch.error().message.find("hyn_ts"), std::string::npos) << touch.error().message;
  EXPECT_TRUE(k.openFds.empty());
}

TEST(EvdevTouch, PointsOutsideTheRangeAreRejected) {
  FakeInputKernel k;
  populate(k);
  auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
  ASSERT_TRUE(touch.ok());
  EXPECT_EQ((*touch)->tap(Point{801, 0}, 0ms).code(), Errc::InvalidArgument);
  EXPECT_EQ((*touch)->tap(Point{0, -1}, 0ms).code(), Errc::InvalidArgument);
  EXPECT_EQ((*touch)->tap(Point{0, 0}, -1ms).code(), Errc::InvalidArgument);
  EXPECT_TRUE(k.written.empty());
}

TEST(EvdevTouch, ReleasesItsFd) {
  FakeInputKernel k;
  populate(k);
  {
    auto touch = printcast::hal::createEvdevTouchInjector(k.config("hyn_ts", {800, 480}), k);
    ASSERT_TRUE(touch.ok());
    EXPECT_EQ(k.openFds.size(), 1u);
  }
  EXPECT_TRUE(k.openFds.empty());
}

}  // namespace
