// SPDX-License-Identifier: MIT
// Timelapse assembly: N JPEG frames -> MP4, printcast's assembler against ffmpeg running
// moonraker-timelapse's command on the same frames in the same run:
//   ffmpeg -r 30 -i frame%6d.jpg -threads 2 -g 5 -crf 23 -vcodec libx264 -pix_fmt yuv420p out.mp4
// and, as a second peer, ffmpeg with the x264 settings our assembler uses (veryfast, zerolatency).
// Each side runs as a child process (ours: this program re-executed with --assemble), so wall
// time and peak RSS (wait4 rusage ru_maxrss) are measured the same way for both.
//
//   printcast-bench-timelapse [--frames 300] [--size 1920x1080] [--reps 1] [--keep DIR]
//
// The frames are the test pattern (moving shapes, text) with camera-like noise added
// (+-6 levels of luma), JPEG quality 85: similar in size to a USB camera's 1080p JPEGs.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "printcast/codecs/jpeg.h"
#include "printcast/hal/capture.h"
#include "printcast/hal/test_pattern.h"
#include "settings.h"
#include "timelapse_assembly.h"

namespace fs = std::filesystem;
using namespace printcast;

namespace {

struct RunResult {
  double wallS = 0;
  double cpuS = 0;  // user + system of the child
  double peakRssMiB = 0;
  int status = -1;
  uint64_t outputBytes = 0;
};

RunResult runChild(const std::vector<std::string>& argv, const fs::path& output) {
  RunResult r;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  r.wallS = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.cpuS = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  r.peakRssMiB = static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::error_code ec;
  r.outputBytes = fs::exists(output, ec) ? fs::file_size(output, ec) : 0;
  return r;
}

// The child side: assemble `folder` into `outDir` as the streamer's assembler does.
int assemble(const std::string& folder, const std::string& outDir) {
  streamer::AssemblyOptions o;  // the streamer's defaults: CRF 23, 30 fps, veryfast, zerolatency
  auto r = streamer::assembleFrames(folder, outDir, o);
  if (!r) {
    std::fprintf(stderr, "assembly failed: %s\n", r.error().describe().c_str());
    return 1;
  }
  return 0;
}

int makeFrames(const fs::path& dir, int frames, hal::Size size) {
  auto cam = hal::createTestPatternCapture();
  hal::CaptureConfig cc;
  cc.format = hal::fourcc::kI420;
  cc.size = size;
  cc.fps = 0;
  if (cam->validate(cc) == hal::Negotiation::Invalid || !cam->start(cc)) return 1;
  auto jpeg = codecs::createJpegEncoder();
  hal::EncoderConfig ec;
  ec.jpegQuality = 85;
  (void)jpeg->configure(ec);
  auto pool = *hal::FramePool::create(hal::fourcc::kI420, size, 1);
  uint32_t rnd = 12345;
  uint64_t bytes = 0;
  for (int i = 1; i <= frames;) {
    auto f = cam->dequeue();
    if (!f) continue;
    auto w = *pool->acquire();
    for (int p = 0; p < 3; ++p) {
      const int h = p == 0 ? size.height : size.height / 2;
      const int wd = p == 0 ? size.width : size.width / 2;
      for (int y = 0; y < h; ++y) {
        const uint8_t* src = f->plane(p).data + y * f->plane(p).stride;
        uint8_t* dst = w.data(p) + y * w.stride(p);
        if (p != 0) {
          std::memcpy(dst, src, static_cast<size_t>(wd));
          continue;
        }
        for (int x = 0; x < wd; ++x) {
          rnd = rnd * 1664525u + 1013904223u;
          const int noise = static_cast<int>((rnd >> 24) % 13) - 6;
          dst[x] = static_cast<uint8_t>(std::clamp(src[x] + noise, 0, 255));
        }
      }
    }
    auto frame = std::move(w).publish(f->timestamp(), static_cast<uint64_t>(i));
    auto packet = jpeg->encode(frame);
    if (!packet) return 1;
    std::ofstream out(dir / streamer::frameFileName(static_cast<uint64_t>(i)), std::ios::binary);
    out.write(reinterpret_cast<const char*>((*packet)->data.data()),
              static_cast<std::streamsize>((*packet)->data.size()));
    bytes += (*packet)->data.size();
    ++i;
  }
  cam->stop();
  fmt::print("frames: {} x {} JPEG q85, {:.0f} KiB each on average\n", frames, size.str(),
             static_cast<double>(bytes) / frames / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("printcast timelapse assembly vs ffmpeg");
  int frames = 300;
  std::string sizeText = "1920x1080";
  int reps = 1;
  std::string keep;
  std::vector<std::string> assembleArgs;
  app.add_option("--frames", frames, "Frames per video")->check(CLI::Range(1, 100000));
  app.add_option("--size", sizeText, "Frame size WIDTHxHEIGHT");
  app.add_option("--reps", reps, "Runs of each side")->check(CLI::Range(1, 20));
  app.add_option("--keep", keep, "Work in DIR and keep it (default: a temp folder, removed)");
  app.add_option("--assemble", assembleArgs, "(internal) FOLDER OUTDIR: assemble and exit")->expected(2);
  CLI11_PARSE(app, argc, argv);
  if (!assembleArgs.empty()) return assemble(assembleArgs[0], assembleArgs[1]);

  auto size = streamer::parseResolution(sizeText);
  if (!size) {
    std::fprintf(stderr, "%s\n", size.error().message.c_str());
    return 2;
  }
  fs::path work = keep;
  if (work.empty()) {
    char tmpl[] = "/var/tmp/printcast-bench-tl-XXXXXX";  // disk, not tmpfs: as on the printer
    work = ::mkdtemp(tmpl);
  }
  const fs::path source = work / "source";
  fs::create_directories(source);
  if (makeFrames(source, frames, *size) != 0) {
    std::fprintf(stderr, "making frames failed\n");
    return 1;
  }
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  fmt::print("{:<44} {:>8} {:>8} {:>10} {:>10}\n", "assembler", "wall s", "cpu s", "peak MiB", "MP4 KiB");
  std::vector<double> oursWall, ffWall, oursRss, ffRss;
  for (int rep = 0; rep < reps; ++rep) {
    // ffmpeg with moonraker-timelapse's command line.
    const fs::path ffOut = work / "ffmpeg.mp4";
    fs::remove(ffOut);
    auto ff = runChild(
        {"ffmpeg", "-v", "error", "-y", "-r", "30", "-i", (source / "frame%6d.jpg").string(), "-threads", "2",
         "-g", "5", "-crf", "23", "-vcodec", "libx264", "-pix_fmt", "yuv420p", ffOut.string()},
        ffOut);
    fmt::print("{:<44} {:>8.2f} {:>8.2f} {:>10.1f} {:>10.0f}{}\n", "ffmpeg (moonraker-timelapse command)",
               ff.wallS, ff.cpuS, ff.peakRssMiB, static_cast<double>(ff.outputBytes) / 1024.0,
               ff.status == 0 ? "" : " FAILED");
    // ffmpeg with our x264 settings (for the cost of the settings rather than of the program).
    const fs::path ff2Out = work / "ffmpeg-veryfast.mp4";
    fs::remove(ff2Out);
    auto ff2 = runChild({"ffmpeg",   "-v",       "error",        "-y",
                         "-r",       "30",       "-i",           (source / "frame%6d.jpg").string(),
                         "-threads", "2",        "-g",           "30",
                         "-crf",     "23",       "-vcodec",      "libx264",
                         "-preset",  "veryfast", "-tune",        "zerolatency",
                         "-pix_fmt", "yuv420p",  ff2Out.string()},
                        ff2Out);
    fmt::print("{:<44} {:>8.2f} {:>8.2f} {:>10.1f} {:>10.0f}{}\n", "ffmpeg (veryfast, zerolatency, as ours)",
               ff2.wallS, ff2.cpuS, ff2.peakRssMiB, static_cast<double>(ff2.outputBytes) / 1024.0,
               ff2.status == 0 ? "" : " FAILED");
    // Ours, on a hard-linked copy of the frames (the assembler removes its folder when done).
    const fs::path out = work / "out";
    fs::remove_all(out);
    fs::create_directories(out);
    auto folder = streamer::createFrameFolder(out, "bench", "bench.gcode");
    if (!folder) return 1;
    for (const auto& e : fs::directory_iterator(source))
      fs::create_hard_link(e.path(), *folder / e.path().filename());
    auto ours = runChild({self, "--assemble", folder->string(), out.string()}, out / "bench_1.mp4");
    fmt::print("{:<44} {:>8.2f} {:>8.2f} {:>10.1f} {:>10.0f}{}\n", "printcast assembleFrames", ours.wallS,
               ours.cpuS, ours.peakRssMiB, static_cast<double>(ours.outputBytes) / 1024.0,
               ours.status == 0 ? "" : " FAILED");
    oursWall.push_back(ours.wallS);
    ffWall.push_back(ff.wallS);
    oursRss.push_back(ours.peakRssMiB);
    ffRss.push_back(ff.peakRssMiB);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  fmt::print("ratio printcast/ffmpeg(moonraker-timelapse): wall {:.2f}x, peak RSS {:.2f}x (median of {})\n",
             median(oursWall) / median(ffWall), median(oursRss) / median(ffRss), reps);
  fmt::print("target: peak RSS < 64 MiB: {}; wall time <= ffmpeg: {}\n",
             median(oursRss) < 64 ? "met" : "NOT met",
             median(oursWall) <= median(ffWall) ? "met" : "NOT met");
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
