// SPDX-License-Identifier: MIT
// Timelapse assembly: JPEG frames -> x264 (CRF) -> mp4::FileWriter, plus the thumbnail.
#include "timelapse_assembly.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "printcast/codecs/convert.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/transport/mp4.h"

namespace printcast::streamer {

namespace fs = std::filesystem;
using hal::Errc;

namespace {

constexpr const char* kFramesDir = ".frames";
constexpr const char* kPrintFile = "print.json";
constexpr const char* kAssembledFile = "assembled";

bool isFrameName(const std::string& n) {
  if (n.size() < 10 || n.compare(0, 5, "frame") != 0 || n.compare(n.size() - 4, 4, ".jpg") != 0) return false;
  return std::all_of(n.begin() + 5, n.end() - 4, [](char c) { return c >= '0' && c <= '9'; });
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

hal::Result<std::vector<uint8_t>> readFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return hal::errnoError("cannot open " + path.string());
  std::vector<uint8_t> out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  uint8_t buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const hal::Error e = hal::errnoError("cannot read " + path.string());
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

std::vector<fs::path> listFrames(const fs::path& folder) {
  std::vector<fs::path> frames;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (isFrameName(entry.path().filename().string())) frames.push_back(entry.path());
  }
  std::sort(frames.begin(), frames.end());
  return frames;
}

}  // namespace

int outputFps(size_t frames, const AssemblyOptions& o) {
  if (!o.variableFps) return std::clamp(o.fps, 1, 120);
  const double raw = static_cast<double>(frames) / std::max(1, o.targetLengthS);
  const int lo = std::clamp(o.minFps, 1, 120);
  const int hi = std::clamp(std::max(o.maxFps, lo), 1, 120);
  return std::clamp(static_cast<int>(std::lround(raw)), lo, hi);
}

std::string gcodeBaseName(const std::string& filename) {
  std::string base = filename;
  if (const auto slash = base.find_last_of('/'); slash != std::string::npos) base = base.substr(slash + 1);
  if (const auto dot = base.find_last_of('.'); dot != std::string::npos && dot > 0)
    base = base.substr(0, dot);
  return safeBaseName(std::move(base));
}

std::string safeBaseName(std::string base) {
  for (auto& c : base) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) c = '_';
  }
  // No hidden files, no "." / "..".
  while (!base.empty() && base.front() == '.') base.erase(base.begin());
  if (base.empty()) base = "timelapse";
  return base;
}

int nextSequence(const fs::path& dir, const std::string& name) {
  int highest = 0;
  std::error_code ec;
  const std::string prefix = name + "_";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string n = entry.path().filename().string();
    if (n.size() <= prefix.size() + 4 || n.compare(0, prefix.size(), prefix) != 0) continue;
    std::string_view rest(n);
    rest.remove_prefix(prefix.size());
    std::string_view seq;
    if (rest.ends_with(".mp4")) {
      seq = rest.substr(0, rest.size() - 4);
    } else if (rest.ends_with(".jpg")) {
      rest = rest.substr(0, rest.size() - 4);
      const auto us = rest.find('_');
      if (us == std::string_view::npos || !allDigits(rest.substr(us + 1))) continue;
      seq = rest.substr(0, us);
    }
    if (!allDigits(seq) || seq.size() > 9) continue;
    highest = std::max(highest, std::stoi(std::string(seq)));
  }
  return highest + 1;
}

std::string frameFileName(uint64_t index) { return fmt::format("frame{:06}.jpg", index); }

std::vector<fs::path> listFrameFolders(const fs::path& outputDir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(outputDir / kFramesDir, ec)) {
    if (entry.is_directory(ec) && entry.path().filename().string().front() != '.')
      out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

hal::Status writeFileAtomically(const fs::path& path, std::span<const uint8_t> bytes) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return hal::Status(hal::errnoError("cannot create a file in " + dir.string()));
  auto fail = [&](const std::string& what) {
    const hal::Error e = hal::errnoError(fmt::format("{} {}", what, path.string()));
    ::close(fd);
    ::unlink(tmpl.c_str());
    return hal::Status(e);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    done += static_cast<size_t>(n);
  }
  (void)::fchmod(fd, 0644);
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const hal::Error e = hal::errnoError("cannot close " + path.string());
    ::unlink(tmpl.c_str());
    return hal::Status(e);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const hal::Error e = hal::errnoError("cannot rename to " + path.string());
    ::unlink(tmpl.c_str());
    return hal::Status(e);
  }
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    (void)::fsync(dirFd);
    ::close(dirFd);
  }
  return {};
}

hal::Result<fs::path> createFrameFolder(const fs::path& outputDir, const std::string& gcodeName,
                                        const std::string& filename) {
  std::error_code ec;
  const fs::path root = outputDir / kFramesDir;
  fs::create_directories(root, ec);
  if (ec)
    return hal::Error{Errc::Io, ec.value(), fmt::format("cannot create {}: {}", root.string(), ec.message())};
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  fs::path folder;
  for (int i = 0;; ++i) {
    folder = root / fmt::format("{}-{}{}", gcodeName, secs, i == 0 ? std::string() : fmt::format("-{}", i));
    if (::mkdir(folder.c_str(), 0755) == 0) break;
    if (errno != EEXIST || i > 100) return hal::errnoError("cannot create " + folder.string());
  }
  const std::string meta =
      nlohmann::json{{"gcode_name", gcodeName}, {"filename", filename}, {"started", secs}}.dump() + "\n";
  if (auto st = writeFileAtomically(folder / kPrintFile,
                                    {reinterpret_cast<const uint8_t*>(meta.data()), meta.size()});
      !st) {
    fs::remove_all(folder, ec);
    return st.error();
  }
  return folder;
}

hal::Result<AssemblyResult> assembleFrames(const fs::path& folder, const fs::path& outputDir,
                                           const AssemblyOptions& options, AssemblyProgress* progress,
                                           const std::atomic<bool>* cancelled) {
  std::error_code ec;
  AssemblyResult result;
  // A video made before a crash that left its folder behind: only the clean-up is left to do.
  if (auto marker = readFile(folder / kAssembledFile); marker) {
    const std::string name(marker->begin(), marker->end());
    if (!name.empty() && fs::exists(outputDir / name, ec)) {
      result.video = outputDir / name;
      fs::remove_all(folder, ec);
      return result;
    }
  }
  auto meta = readFile(folder / kPrintFile);
  if (!meta)
    return hal::Error{Errc::InvalidArgument, 0, folder.string() + ": no print.json: not a timelapse folder"};
  const auto metaJson = nlohmann::json::parse(meta->begin(), meta->end(), nullptr, false);
  // print.json's gcode_name is already a base name: sanitised again (the folder may come from a
  // USB stick), never cut at its last dot a second time ("Benchy_0.2" stays).
  const std::string gcodeName = safeBaseName(
      metaJson.is_object() ? metaJson.value("gcode_name", std::string("timelapse")) : "timelapse");

  const std::vector<fs::path> frames = listFrames(folder);
  if (frames.empty()) {
    fs::remove_all(folder, ec);
    return hal::Error{Errc::InvalidArgument, 0, folder.string() + ": no frames captured; folder removed"};
  }
  if (progress != nullptr) {
    progress->framesDone = 0;
    progress->framesTotal = frames.size() + static_cast<uint64_t>(std::max(0, options.duplicateLast));
  }

  // The first decodable frame sets the size.
  hal::Size size;
  for (const auto& f : frames) {
    auto bytes = readFile(f);
    if (!bytes) continue;
    auto info = codecs::inspectJpeg(*bytes);
    if (info) {
      size = info->size;
      break;
    }
  }
  if (size.empty() || size.width % 2 != 0 || size.height % 2 != 0) {
    if (size.empty()) fs::remove_all(folder, ec);
    return hal::Error{Errc::InvalidArgument, 0,
                      size.empty()
                          ? folder.string() + ": no decodable JPEG frame; folder removed"
                          : fmt::format("{}: frame size {} is not even", folder.string(), size.str())};
  }
  const int fps = outputFps(frames.size(), options);
  const int gop = options.gopFrames > 0 ? options.gopFrames : fps;

  auto decodePool = hal::FramePool::create(hal::fourcc::kI420, size, 2);
  if (!decodePool) return decodePool.error();
  const uint8_t flipBits = static_cast<uint8_t>((options.flipX ? hal::Transform::kHFlip : 0) |
                                                (options.flipY ? hal::Transform::kVFlip : 0));
  const hal::Transform flip(flipBits);
  std::shared_ptr<hal::FramePool> flipPool;
  if (flipBits != 0) {
    auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 2);
    if (!pool) return pool.error();
    flipPool = *pool;
  }

  codecs::X264Options x264;
  x264.preset = options.preset;
  // No lookahead and no B-frames: bounded memory (a few frames at 1080p), one packet per frame
  // (nothing to flush), and the MP4 writer has no composition offsets.
  x264.tune = "zerolatency";
  x264.profile = "high";
  x264.threads = options.threads;
  x264.crf = static_cast<float>(std::clamp(options.crf, 0, 51));
  auto encoder = codecs::createX264Encoder(x264);
  hal::EncoderConfig enc;
  enc.size = size;
  enc.fps = fps;
  enc.gopFrames = std::clamp(gop, 1, 1000);
  enc.bitrateKbps = 1000;  // unused with CRF, must be in range
  enc.fullRange = true;    // the frames are decoded JPEG snapshots (JFIF: full range)
  if (auto st = encoder->configure(enc); !st) return st.error();

  const uint32_t timescale = static_cast<uint32_t>(fps) * 1000u;
  const uint32_t duration = 1000;
  const int sequence = nextSequence(outputDir, gcodeName);
  const std::string videoName = fmt::format("{}_{}.mp4", gcodeName, sequence);
  std::optional<transport::mp4::FileWriter> writer;

  auto addFrame = [&](const hal::Frame& frame) -> hal::Status {
    auto packet = encoder->encode(frame);
    if (!packet) {
      if (packet.code() == Errc::Again) return {};
      return packet.error();
    }
    const hal::Packet& p = **packet;
    if (!writer) {
      if (!p.config) return hal::Status(Errc::Io, "x264: no SPS/PPS on the first access unit");
      auto track = transport::mp4::trackInfo(*p.config, timescale);
      if (!track) return track.error();
      auto w = transport::mp4::FileWriter::create(outputDir / videoName, std::move(*track));
      if (!w) return w.error();
      writer.emplace(std::move(*w));
    }
    const auto sample = codecs::h264::annexBToLengthPrefixed(codecs::h264::nalUnits(p), true);
    if (auto st = writer->addSample(sample, duration, p.keyframe); !st) return st;
    ++result.videoFrames;
    if (progress != nullptr) ++progress->framesDone;
    return {};
  };

  hal::Frame last;
  fs::path lastPath;
  uint64_t sequenceNo = 0;
  for (const auto& f : frames) {
    if (cancelled != nullptr && cancelled->load()) return hal::Error{Errc::Timeout, 0, "assembly cancelled"};
    auto bytes = readFile(f);
    if (!bytes) {
      ++result.framesSkipped;
      spdlog::warn("timelapse: skipping {}", bytes.error().describe());
      if (progress != nullptr) ++progress->framesDone;
      continue;
    }
    auto info = codecs::inspectJpeg(*bytes);
    if (!info || !(info->size == size)) {
      ++result.framesSkipped;
      spdlog::warn(
          "timelapse: skipping {}: {}", f.string(),
          info ? fmt::format("size {} differs from the first frame's {}", info->size.str(), size.str())
               : info.error().describe());
      if (progress != nullptr) ++progress->framesDone;
      continue;
    }
    last = hal::Frame();  // give the pool buffer back before taking the next
    auto decoded = codecs::decodeJpegToI420(*bytes, **decodePool, hal::Clock::now(), sequenceNo);
    if (!decoded) {
      ++result.framesSkipped;
      spdlog::warn("timelapse: skipping {}: {}", f.string(), decoded.error().describe());
      if (progress != nullptr) ++progress->framesDone;
      continue;
    }
    hal::Frame frame = std::move(*decoded);
    if (flipPool) {
      auto flipped = codecs::convertToI420(frame, flip, *flipPool);
      if (!flipped) return flipped.error();
      frame = std::move(*flipped);
    }
    if (auto st = addFrame(frame); !st) return st.error();
    ++result.framesUsed;
    ++sequenceNo;
    last = std::move(frame);
    lastPath = f;
  }
  if (result.framesUsed == 0) {
    fs::remove_all(folder, ec);
    return hal::Error{Errc::InvalidArgument, 0,
                      folder.string() + ": no decodable JPEG frame; folder removed"};
  }
  for (int i = 0; i < options.duplicateLast; ++i) {
    if (auto st = addFrame(last); !st) return st.error();
  }

  // The thumbnail: the last frame as the video shows it.
  std::vector<uint8_t> thumb;
  if (flipPool) {
    auto jpeg = codecs::createJpegEncoder();
    hal::EncoderConfig jc;
    jc.size = size;
    jc.jpegQuality = 85;
    if (auto st = jpeg->configure(jc); !st) return st.error();
    auto packet = jpeg->encode(last);
    if (!packet) return packet.error();
    thumb = (*packet)->data;
  } else {
    auto bytes = readFile(lastPath);
    if (!bytes) return bytes.error();
    thumb = std::move(*bytes);
  }
  last = hal::Frame();
  const fs::path thumbPath = outputDir / fmt::format("{}_{}_{}.jpg", gcodeName, sequence, result.framesUsed);
  if (auto st = writeFileAtomically(thumbPath, thumb); !st) return st.error();
  if (auto st = writer->finish(); !st) {
    fs::remove(thumbPath, ec);
    return st.error();
  }
  result.video = outputDir / videoName;
  result.thumbnail = thumbPath;
  result.fps = fps;
  result.size = size;
  // Mark the folder done before removing it: a crash in between must not make a second video.
  (void)writeFileAtomically(folder / kAssembledFile,
                            {reinterpret_cast<const uint8_t*>(videoName.data()), videoName.size()});
  fs::remove_all(folder, ec);
  if (ec) spdlog::warn("timelapse: cannot remove {}: {}", folder.string(), ec.message());
  return result;
}

}  // namespace printcast::streamer
