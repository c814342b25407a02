// SPDX-License-Identifier: MIT
// Timelapse recordings on disk: storage options, listing, opening and deleting (see the header).
#include "timelapse_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <span>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "printcast/transport/mp4.h"

namespace printcast::streamer {

namespace {

using hal::Errc;

constexpr std::string_view kVideoExt = ".mp4";
constexpr std::string_view kThumbExt = ".jpg";
constexpr size_t kMaxNameBytes = 200;
constexpr uint64_t kMaxMoovBytes = 64ull << 20;  // a moov larger than this is not ours

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool allDigits(std::string_view s) {
  return !s.empty() && s.size() <= 12 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "X_N.jpg" -> {"X", N} when it is a thumbnail name (N all digits), else nullopt.
std::optional<std::pair<std::string, int64_t>> thumbnailOwner(std::string_view file) {
  if (!endsWith(file, kThumbExt)) return std::nullopt;
  const std::string_view stem = file.substr(0, file.size() - kThumbExt.size());
  const size_t underscore = stem.rfind('_');
  if (underscore == std::string_view::npos || underscore == 0) return std::nullopt;
  const std::string_view digits = stem.substr(underscore + 1);
  if (!allDigits(digits)) return std::nullopt;
  return std::pair{std::string(stem.substr(0, underscore)), std::stoll(std::string(digits))};
}

// An owned descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The storage folder, opened (symbolic links in the configured path itself are the owner's choice
// and are followed; what is inside is never followed).
Fd openFolder(const std::filesystem::path& path) {
  return Fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// A regular file directly inside `dirFd`, never through a symbolic link.
hal::Result<TimelapseFile> openInFolder(int dirFd, const std::string& file) {
  // O_NONBLOCK: a FIFO planted under a video's name must not block the open.
  Fd fd(::openat(dirFd, file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP) return {Errc::InvalidArgument, file + ": a symbolic link (not served)"};
    if (err == ENOENT) return {Errc::NoDevice, file + ": no such file"};
    return hal::errnoError("cannot open " + file, err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return hal::errnoError("cannot stat " + file);
  if (!S_ISREG(st.st_mode)) return {Errc::InvalidArgument, file + ": not a regular file"};
  // Back to blocking reads for sendfile()/pread() (a regular file never blocks on O_NONBLOCK anyway).
  const int flags = ::fcntl(fd.get(), F_GETFL);  // NOLINT(cppcoreguidelines-pro-type-vararg)
  if (flags >= 0) (void)::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);  // NOLINT
  return TimelapseFile{fd.release(), static_cast<uint64_t>(st.st_size),
                       static_cast<int64_t>(st.st_mtim.tv_sec), file,
                       static_cast<int64_t>(st.st_mtim.tv_nsec)};
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint64_t be64(const uint8_t* p) { return (uint64_t{be32(p)} << 32) | be32(p + 4); }

bool preadAll(int fd, uint8_t* buf, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

// The payload of the first child box of `type` (ISO/IEC 14496-12 4.2), via mp4::parseBoxes.
std::optional<std::span<const uint8_t>> child(std::span<const uint8_t> bytes, std::string_view type) {
  for (const auto& b : transport::mp4::parseBoxes(bytes)) {
    if (b.type == type) return b.payload;
  }
  return std::nullopt;
}

// mvhd and mdhd share the layout of their first fields (8.2.2, 8.4.2): version/flags, then
// creation and modification times, timescale, duration (32 or 64 bits by version).
std::optional<double> headerDuration(std::span<const uint8_t> box) {
  if (box.size() < 4) return std::nullopt;
  const uint8_t version = box[0];
  uint32_t timescale = 0;
  uint64_t duration = 0;
  if (version == 1) {
    if (box.size() < 4 + 8 + 8 + 4 + 8) return std::nullopt;
    timescale = be32(box.data() + 20);
    duration = be64(box.data() + 24);
  } else {
    if (box.size() < 4 + 4 + 4 + 4 + 4) return std::nullopt;
    timescale = be32(box.data() + 12);
    duration = be32(box.data() + 16);
  }
  const bool unknown = version == 1 ? duration == UINT64_MAX : duration == UINT32_MAX;
  if (timescale == 0 || duration == 0 || unknown) return std::nullopt;
  return static_cast<double>(duration) / timescale;
}

}  // namespace

hal::Result<Mp4Summary> readMp4Summary(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return hal::errnoError("cannot stat the MP4");
  const auto fileSize = static_cast<uint64_t>(st.st_size);
  uint64_t pos = 0;
  std::vector<uint8_t> moov;
  while (pos + 8 <= fileSize) {
    std::array<uint8_t, 16> h{};
    if (!preadAll(fd, h.data(), 8, pos)) return hal::errnoError("cannot read the MP4");
    uint64_t size = be32(h.data());
    uint64_t header = 8;
    if (size == 1) {
      if (pos + 16 > fileSize || !preadAll(fd, h.data() + 8, 8, pos + 8))
        return {Errc::InvalidArgument, "MP4: truncated box header"};
      size = be64(h.data() + 8);
      header = 16;
    } else if (size == 0) {
      size = fileSize - pos;
    }
    if (size < header || size > fileSize - pos) return {Errc::InvalidArgument, "MP4: box runs past the end"};
    if (std::memcmp(h.data() + 4, "moov", 4) == 0) {
      if (size - header > kMaxMoovBytes) return {Errc::InvalidArgument, "MP4: moov too large"};
      moov.resize(static_cast<size_t>(size - header));
      if (!preadAll(fd, moov.data(), moov.size(), pos + header)) return hal::errnoError("cannot read moov");
      break;
    }
    pos += size;
  }
  if (moov.empty()) return {Errc::InvalidArgument, "MP4: no moov box"};
  Mp4Summary out;
  std::optional<double> duration;
  if (auto mvhd = child(moov, "mvhd")) duration = headerDuration(*mvhd);
  if (auto trak = child(moov, "trak")) {
    if (auto mdia = child(*trak, "mdia")) {
      if (!duration) {
        if (auto mdhd = child(*mdia, "mdhd")) duration = headerDuration(*mdhd);
      }
      if (auto minf = child(*mdia, "minf")) {
        if (auto stbl = child(*minf, "stbl")) {
          // stsz (8.7.3.2): version/flags, sample_size, sample_count.
          if (auto stsz = child(*stbl, "stsz"); stsz && stsz->size() >= 12)
            out.samples = be32(stsz->data() + 8);
        }
      }
    }
  }
  if (!duration && out.samples == 0) return {Errc::InvalidArgument, "MP4: no duration and no samples"};
  out.durationSeconds = duration.value_or(0);
  return out;
}

std::vector<TimelapseStorage> timelapseStorageOptions(const Settings& settings, const bsp::Board& board) {
  std::vector<TimelapseStorage> out;
  std::filesystem::path internal;
  if (!settings.timelapseFolder.empty()) {
    internal = settings.timelapseFolder;
  } else if (!board.storage.timelapseInternal.empty()) {
    internal = std::string(board.storage.timelapseInternal);
  } else {
    const char* xdg = std::getenv("XDG_DATA_HOME");  // NOLINT(concurrency-mt-unsafe): read at start-up
    const char* home = std::getenv("HOME");          // NOLINT(concurrency-mt-unsafe)
    if (xdg != nullptr && xdg[0] == '/') {
      internal = std::filesystem::path(xdg) / "printcast" / "timelapse";
    } else if (home != nullptr && home[0] == '/') {
      internal = std::filesystem::path(home) / ".local" / "share" / "printcast" / "timelapse";
    } else {
      internal = "/tmp/printcast-timelapse";
    }
  }
  out.push_back({"internal", "internal storage", internal, {}});
  // timelapse_usb_path replaces the board's USB folder; under the board's mount point it is
  // available only while the stick is mounted, elsewhere always.
  const std::string usb = !settings.timelapseUsbPath.empty() ? settings.timelapseUsbPath
                                                             : std::string(board.storage.timelapseUsb);
  if (settings.timelapseFolder.empty() && !usb.empty()) {
    const std::string mount(board.storage.usbMount);
    const bool underMount = !mount.empty() && usb.rfind(mount + "/", 0) == 0;
    out.push_back({"usb", "USB stick", usb, underMount ? mount : std::string()});
  }
  return out;
}

hal::Status validateTimelapseName(std::string_view name) {
  auto bad = [&](const std::string& why) {
    std::string shown;
    for (char c : name.substr(0, 80)) {
      shown += (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') ? '?' : c;
    }
    return hal::Status(Errc::InvalidArgument, fmt::format("bad recording name \"{}\": {}", shown, why));
  };
  if (name.empty()) return bad("empty");
  if (name.size() > kMaxNameBytes) return bad(fmt::format("longer than {} bytes", kMaxNameBytes));
  for (char c : name) {
    if (c == '\0') return bad("contains a NUL byte");
    if (c == '/' || c == '\\') return bad("contains a path separator");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("contains a control character");
  }
  if (name.find("..") != std::string_view::npos) return bad("contains \"..\"");
  if (name.front() == '.') return bad("starts with \".\"");
  return {};
}

TimelapseStore::TimelapseStore(std::vector<TimelapseStorage> options, std::string current)
    : options_(std::move(options)), current_(std::move(current)) {}

void TimelapseStore::configure(std::vector<TimelapseStorage> options, std::string current) {
  std::lock_guard lock(mutex_);
  options_ = std::move(options);
  current_ = std::move(current);
  cache_.clear();
}

bool TimelapseStore::available(const TimelapseStorage& storage) {
  struct stat st {};
  if (!storage.mountPoint.empty()) {
    struct stat parent {};
    const auto up = storage.mountPoint.parent_path();
    if (::stat(storage.mountPoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    if (::stat(up.c_str(), &parent) != 0) return false;
    if (st.st_dev == parent.st_dev && st.st_ino != parent.st_ino) return false;  // not mounted
  }
  if (::stat(storage.path.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  return ::stat(storage.path.parent_path().c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<const TimelapseStorage*> TimelapseStore::searchOrder(std::string_view storage) const {
  std::vector<const TimelapseStorage*> out;
  for (const auto& o : options_) {
    if (storage.empty() ? o.id == current_ : o.id == storage) out.push_back(&o);
  }
  if (storage.empty()) {
    for (const auto& o : options_) {
      if (o.id != current_) out.push_back(&o);
    }
  }
  return out;
}

void TimelapseStore::probe(int dirFd, const std::string& key, const std::string& file, uint64_t size,
                           int64_t mtimeNs, TimelapseVideo& video) {
  auto it = cache_.find(key);
  if (it == cache_.end() || it->second.size != size || it->second.mtimeNs != mtimeNs) {
    Cached c{size, mtimeNs, 0, 0};
    auto opened = openInFolder(dirFd, file);
    if (opened) {
      Fd fd(opened->fd);
      if (auto summary = readMp4Summary(fd.get())) {
        c.duration = summary->durationSeconds;
        c.samples = summary->samples;
      }
    }
    it = cache_.insert_or_assign(key, c).first;
  }
  video.durationSeconds = it->second.duration;
  if (video.frames == 0) video.frames = it->second.samples;
}

std::vector<TimelapseVideo> TimelapseStore::list() {
  std::lock_guard lock(mutex_);
  std::vector<TimelapseVideo> out;
  std::map<std::string, bool> seen;  // cache keys still present
  for (const auto& storage : options_) {
    if (!available(storage)) continue;
    Fd dir = openFolder(storage.path);
    if (dir.get() < 0) continue;
    const int dupFd = ::dup(dir.get());
    if (dupFd < 0) continue;
    DIR* d = ::fdopendir(dupFd);
    if (d == nullptr) {
      ::close(dupFd);
      continue;
    }
    std::vector<TimelapseVideo> videos;
    std::vector<int64_t> mtimesNs;                                  // of `videos`, for the duration cache
    std::map<std::string, std::pair<int64_t, std::string>> thumbs;  // video name -> (frames, file)
    while (const dirent* e = ::readdir(d)) {                        // NOLINT(concurrency-mt-unsafe): own DIR*
      const std::string file = e->d_name;
      if (file.empty() || file.front() == '.') continue;
      struct stat st {};
      if (::fstatat(dir.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
      if (endsWith(file, kVideoExt)) {
        const std::string name = file.substr(0, file.size() - kVideoExt.size());
        if (!validateTimelapseName(name)) continue;
        TimelapseVideo v;
        v.name = name;
        v.storage = storage.id;
        v.sizeBytes = static_cast<uint64_t>(st.st_size);
        v.modifiedUnix = static_cast<int64_t>(st.st_mtim.tv_sec);
        videos.push_back(std::move(v));
        mtimesNs.push_back(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
      } else if (auto owner = thumbnailOwner(file)) {
        auto& best = thumbs[owner->first];
        if (best.second.empty() || owner->second > best.first) best = {owner->second, file};
      }
    }
    ::closedir(d);
    for (size_t i = 0; i < videos.size(); ++i) {
      TimelapseVideo& v = videos[i];
      if (auto t = thumbs.find(v.name); t != thumbs.end()) {
        v.thumbnail = t->second.second;
        v.frames = t->second.first;
      }
      const std::string key = storage.id + "/" + v.name;
      seen[key] = true;
      probe(dir.get(), key, v.name + std::string(kVideoExt), v.sizeBytes, mtimesNs[i], v);
      out.push_back(std::move(v));
    }
  }
  for (auto it = cache_.begin(); it != cache_.end();)
    it = seen.count(it->first) ? std::next(it) : cache_.erase(it);
  return out;
}

hal::Result<TimelapseFile> TimelapseStore::openVideo(std::string_view name, std::string_view storage) {
  if (endsWith(name, kVideoExt)) name.remove_suffix(kVideoExt.size());
  if (auto st = validateTimelapseName(name); !st) return st.error();
  std::lock_guard lock(mutex_);
  const auto order = searchOrder(storage);
  if (order.empty()) return {Errc::InvalidArgument, fmt::format("no storage \"{}\"", storage)};
  const std::string file = std::string(name) + std::string(kVideoExt);
  for (const TimelapseStorage* s : order) {
    if (!available(*s)) continue;
    Fd dir = openFolder(s->path);
    if (dir.get() < 0) continue;
    auto opened = openInFolder(dir.get(), file);
    if (opened || opened.code() != Errc::NoDevice) return opened;
  }
  return {Errc::NoDevice, "no recording named " + std::string(name)};
}

hal::Result<TimelapseFile> TimelapseStore::openThumbnail(std::string_view name, std::string_view storage) {
  if (endsWith(name, kVideoExt)) name.remove_suffix(kVideoExt.size());
  if (auto st = validateTimelapseName(name); !st) return st.error();
  std::lock_guard lock(mutex_);
  const auto order = searchOrder(storage);
  if (order.empty()) return {Errc::InvalidArgument, fmt::format("no storage \"{}\"", storage)};
  for (const TimelapseStorage* s : order) {
    if (!available(*s)) continue;
    Fd dir = openFolder(s->path);
    if (dir.get() < 0) continue;
    std::string file;
    if (endsWith(name, kThumbExt)) {
      if (!thumbnailOwner(name)) return {Errc::InvalidArgument, std::string(name) + ": not a thumbnail name"};
      file = std::string(name);
    } else {
      // The video's thumbnail with the most frames.
      const int dupFd = ::dup(dir.get());
      DIR* d = dupFd >= 0 ? ::fdopendir(dupFd) : nullptr;
      if (d == nullptr) {
        if (dupFd >= 0) ::close(dupFd);
        continue;
      }
      int64_t best = -1;
      while (const dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe): own DIR*
        auto owner = thumbnailOwner(e->d_name);
        if (owner && owner->first == name && owner->second > best) {
          best = owner->second;
          file = e->d_name;
        }
      }
      ::closedir(d);
      if (file.empty()) continue;
    }
    auto opened = openInFolder(dir.get(), file);
    if (opened || opened.code() != Errc::NoDevice) return opened;
  }
  return {Errc::NoDevice, "no thumbnail for " + std::string(name)};
}

hal::Result<std::vector<std::string>> TimelapseStore::remove(std::string_view name,
                                                             std::string_view storage) {
  if (endsWith(name, kVideoExt)) name.remove_suffix(kVideoExt.size());
  if (auto st = validateTimelapseName(name); !st) return st.error();
  std::lock_guard lock(mutex_);
  const auto order = searchOrder(storage);
  if (order.empty()) return {Errc::InvalidArgument, fmt::format("no storage \"{}\"", storage)};
  const std::string video = std::string(name) + std::string(kVideoExt);
  for (const TimelapseStorage* s : order) {
    if (!available(*s)) continue;
    Fd dir = openFolder(s->path);
    if (dir.get() < 0) continue;
    struct stat st {};
    if (::fstatat(dir.get(), video.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return hal::errnoError("cannot stat " + video);
    }
    if (S_ISLNK(st.st_mode)) return {Errc::InvalidArgument, video + ": a symbolic link (not deleted)"};
    if (!S_ISREG(st.st_mode)) return {Errc::InvalidArgument, video + ": not a regular file (not deleted)"};
    std::vector<std::string> victims{video};
    const int dupFd = ::dup(dir.get());
    if (DIR* d = dupFd >= 0 ? ::fdopendir(dupFd) : nullptr) {
      while (const dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe): own DIR*
        auto owner = thumbnailOwner(e->d_name);
        struct stat ts {};
        if (owner && owner->first == name && ::fstatat(dir.get(), e->d_name, &ts, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(ts.st_mode)) {
          victims.emplace_back(e->d_name);
        }
      }
      ::closedir(d);
    } else if (dupFd >= 0) {
      ::close(dupFd);
    }
    std::vector<std::string> removed;
    for (const auto& f : victims) {
      if (::unlinkat(dir.get(), f.c_str(), 0) != 0 && errno != ENOENT) {
        return hal::errnoError(
            fmt::format("cannot delete {} (deleted so far: {})", f, fmt::join(removed, ", ")));
      }
      removed.push_back(f);
    }
    (void)::fsync(dir.get());  // the deletions are durable once the folder is
    cache_.erase(s->id + "/" + std::string(name));
    return removed;
  }
  return {Errc::NoDevice, "no recording named " + std::string(name)};
}

std::string TimelapseStore::storageJson() {
  std::lock_guard lock(mutex_);
  nlohmann::json options = nlohmann::json::array();
  for (const auto& s : options_) {
    const bool ok = available(s);
    nlohmann::json free = nullptr;
    if (ok) {
      // The folder may not exist yet: ask the nearest existing ancestor's file system.
      std::filesystem::path p = s.path;
      struct statvfs vfs {};
      while (::statvfs(p.c_str(), &vfs) != 0 && p.has_parent_path() && p != p.parent_path())
        p = p.parent_path();
      if (::statvfs(p.c_str(), &vfs) == 0) free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    }
    options.push_back({{"id", s.id},
                       {"label", s.label},
                       {"path", s.path.string()},
                       {"available", ok},
                       {"free_bytes", free}});
  }
  return nlohmann::json{{"current", current_}, {"options", options}}.dump();
}

std::string TimelapseStore::listJson() {
  nlohmann::json videos = nlohmann::json::array();
  for (const auto& v : list()) {
    nlohmann::json j{{"name", v.name},         {"size", v.sizeBytes},
                     {"frames", v.frames},     {"duration", v.durationSeconds},
                     {"date", v.modifiedUnix}, {"storage", v.storage}};
    if (!v.thumbnail.empty()) {
      // Percent-encode everything but unreserved characters (RFC 3986 2.3).
      std::string enc;
      for (unsigned char c : v.thumbnail) {
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
          enc += static_cast<char>(c);
        } else {
          enc += fmt::format("%{:02X}", c);
        }
      }
      j["thumb"] = "/api/timelapse/thumb/" + enc + "?storage=" + v.storage;
    }
    videos.push_back(std::move(j));
  }
  return nlohmann::json{{"videos", videos}}.dump();
}

hal::Result<std::filesystem::path> TimelapseStore::recordingFolder() {
  std::lock_guard lock(mutex_);
  const TimelapseStorage* chosen = nullptr;
  for (const auto* s : searchOrder("")) {
    if (available(*s)) {
      chosen = s;
      break;
    }
  }
  if (chosen == nullptr) return {Errc::NoDevice, "no timelapse storage is available"};
  std::error_code ec;
  std::filesystem::create_directories(chosen->path, ec);
  if (ec)
    return hal::Error{Errc::Io, ec.value(), "cannot create " + chosen->path.string() + ": " + ec.message()};
  return chosen->path;
}

}  // namespace printcast::streamer
