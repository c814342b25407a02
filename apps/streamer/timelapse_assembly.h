// SPDX-License-Identifier: MIT
// Timelapse assembly: a folder of JPEG frames -> an MP4 (H.264, moov first) and its thumbnail,
// named the way the timelapse manager lists them (product.md "Timelapse").
//
// Files, all in the output folder:
//   {gcode_name}_{sequence}.mp4          the video (sequence: 1 + the highest in use for that name)
//   {gcode_name}_{sequence}_{frames}.jpg the thumbnail (the last frame; frames = frames captured)
//   .frames/{gcode_name}-{id}/           a print's working folder while it records:
//       print.json                       {"gcode_name","filename","started"} (written first)
//       frame000001.jpg ...              one JPEG per captured frame, numbered from 1
//       assembled                        written once the video exists (holds its name), so a
//                                        crash before the folder is removed does not make a
//                                        second copy
// Memory: one JPEG, one decoded frame (and its flipped copy) and x264's own buffers at a time;
// the MP4 writer keeps 12 bytes per frame. Nothing is held per frame.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "printcast/hal/geometry.h"
#include "printcast/hal/result.h"

namespace printcast::streamer {

struct AssemblyOptions {
  int crf = 23;              // x264 constant quality 0..51
  int fps = 30;              // output rate when !variableFps, 1..120
  bool variableFps = false;  // fps = frames / targetLengthS, clamped to [minFps, maxFps]
  int targetLengthS = 10;
  int minFps = 5;
  int maxFps = 60;
  bool flipX = false;               // mirror left-right (libyuv)
  bool flipY = false;               // upside down
  int duplicateLast = 0;            // extra copies of the last frame (a pause on the finished print)
  int gopFrames = 0;                // frames between IDRs; 0 = one second's worth (the output fps)
  std::string preset = "veryfast";  // x264 preset; B-frames and lookahead are off whatever it is
  int threads = 0;                  // x264 threads, 0 = x264's choice (one per core)
};

// The output rate for `frames` frames: options.fps, or with variableFps
// round(frames / targetLengthS) clamped to [minFps, maxFps] (moonraker-timelapse's rule).
int outputFps(size_t frames, const AssemblyOptions& options);

// A gcode file name ("subdir/My part.gcode") as the base of file names: the last path
// component without its extension, with every character outside [A-Za-z0-9._-] replaced by '_'
// (the name travels in URLs and must stay inside its folder), "timelapse" when nothing is left.
std::string gcodeBaseName(const std::string& filename);
// The sanitising half of gcodeBaseName() alone, for a name that already is a base name (a
// working folder's print.json): characters outside [A-Za-z0-9._-] become '_', leading dots go,
// "timelapse" when nothing is left. The name keeps its dots ("Benchy_0.2" stays).
std::string safeBaseName(std::string name);

// 1 + the highest sequence of "{name}_{N}.mp4" or "{name}_{N}_{frames}.jpg" in `dir` (1 when none).
int nextSequence(const std::filesystem::path& dir, const std::string& name);

// "frame000042.jpg" for index 42. The working folder's frames sort by name.
std::string frameFileName(uint64_t index);

// The working folders under <outputDir>/.frames/ (whole crashed or finished-but-unassembled prints).
std::vector<std::filesystem::path> listFrameFolders(const std::filesystem::path& outputDir);

// Create a print's working folder and its print.json (written to a temp file, fsync'd, renamed).
// Errors: Io (with the path and errno: unwritable folder, disk full).
hal::Result<std::filesystem::path> createFrameFolder(const std::filesystem::path& outputDir,
                                                     const std::string& gcodeName,
                                                     const std::string& filename);

// Write `bytes` to `path` atomically (temp file in the same folder, fsync, rename, fsync the
// folder). Errors: Io with the path and errno; nothing is left at `path` or as a temp on failure.
hal::Status writeFileAtomically(const std::filesystem::path& path, std::span<const uint8_t> bytes);

struct AssemblyProgress {
  std::atomic<uint64_t> framesDone{0};
  std::atomic<uint64_t> framesTotal{0};
};

struct AssemblyResult {
  std::filesystem::path video;      // the MP4
  std::filesystem::path thumbnail;  // the JPEG
  uint64_t framesUsed = 0;          // JPEGs that decoded
  uint64_t framesSkipped = 0;       // unreadable or undecodable JPEGs
  uint64_t videoFrames = 0;         // framesUsed + duplicates
  int fps = 0;
  hal::Size size;
};

// Encode the frames of `frameFolder` (frame*.jpg in name order) into the output folder, then
// remove the working folder. Frames of another size than the first are scaled to it; odd sizes
// are cropped to even. `progress` (optional) is updated as frames are encoded; `cancelled`
// (optional) is polled between frames.
// Errors (the frame folder is kept whole on every error, so it can be assembled again):
//   InvalidArgument  no decodable frame (the folder is removed: nothing to keep), no print.json
//   Io               the output folder is unwritable or full (from mp4::FileWriter, which leaves
//                    no partial file), a frame unreadable
//   Timeout          cancelled (the streamer is stopping)
hal::Result<AssemblyResult> assembleFrames(const std::filesystem::path& frameFolder,
                                           const std::filesystem::path& outputDir,
                                           const AssemblyOptions& options,
                                           AssemblyProgress* progress = nullptr,
                                           const std::atomic<bool>* cancelled = nullptr);

}  // namespace printcast::streamer
