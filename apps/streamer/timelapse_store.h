// SPDX-License-Identifier: MIT
// The timelapse manager's side of the recordings: where they are stored (internal storage or a
// USB stick), listing them with their duration, frame count and thumbnail, opening a video or
// thumbnail for download, and deleting one. The recorder writes the files; this only reads and
// deletes them.
//
// Files in a storage folder (product.md "Timelapse"):
//   {gcode_name}_{sequence}.mp4            a video; its name is "{gcode_name}_{sequence}"
//   {gcode_name}_{sequence}_{frames}.jpg   its thumbnail; {frames} = frames captured (digits)
//   anything else (the recorder's per-print frame folders, *.part temp files, hidden files,
//   symbolic links) is not a recording: never listed, served or deleted.
// A thumbnail "X_N.jpg" belongs to the video "X" only, so "benchy_3_12.jpg" is benchy_3's and
// never benchy_3_1's or benchy_30's.
//
// Names from requests are checked by validateTimelapseName() before any file is touched, and
// files are opened with openat() on the storage folder with O_NOFOLLOW, so a request never
// reaches outside its folder, not even through a symbolic link placed inside it.
//
// Threading: every method may be called from any thread (a mutex guards the duration cache).
// Calls do file-system I/O (readdir, a few small reads per new or changed video, unlink): short,
// but not for an event loop that must never touch the disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/bsp/board.h"
#include "printcast/hal/result.h"
#include "settings.h"

namespace printcast::streamer {

// One place recordings may be stored.
struct TimelapseStorage {
  std::string id;              // "internal" | "usb" (the timelapse_storage values)
  std::string label;           // shown on the page: "internal storage", "USB stick"
  std::filesystem::path path;  // the folder
  // For removable storage: the mount point that must be mounted for `path` to be usable
  // (otherwise `path` would silently be a folder on the root file system). Empty: always usable.
  std::filesystem::path mountPoint;
};

// The storage options for `settings` on `board`:
//   internal: `timelapse_folder` when set, else the board's StorageSpec::timelapseInternal, else
//             $XDG_DATA_HOME/printcast/timelapse (default ~/.local/share/printcast/timelapse;
//             /tmp/printcast-timelapse when neither variable is set).
//   usb:      the board's StorageSpec::timelapseUsb, when it has one and `timelapse_folder` is not
//             set (a folder override means "everything goes here": tests, non-Kobra boards).
std::vector<TimelapseStorage> timelapseStorageOptions(const Settings& settings, const bsp::Board& board);

// Check a recording name taken from a request (already percent-decoded). Refused: empty, longer
// than 200 bytes, "/", "\", NUL or other control characters, "..", and a leading "." (hidden
// and temp files). Errors: InvalidArgument with the reason.
hal::Status validateTimelapseName(std::string_view name);

struct TimelapseVideo {
  std::string name;     // without ".mp4"
  std::string storage;  // TimelapseStorage::id
  uint64_t sizeBytes = 0;
  int64_t modifiedUnix = 0;    // the file's modification time, Unix seconds (the recording's end)
  double durationSeconds = 0;  // from the MP4 (mvhd, else the track's mdhd); 0 when unreadable
  int64_t frames = 0;          // from the thumbnail's name, else the MP4's sample count (stsz); 0 = unknown
  std::string thumbnail;       // file name of its thumbnail ("" = none): the one with most frames
};

// An opened file for a response body.
struct TimelapseFile {
  int fd = -1;  // owned by the caller: close it (or hand it to transport::FileBody)
  uint64_t sizeBytes = 0;
  int64_t modifiedUnix = 0;
  std::string fileName;    // "benchy_3.mp4"
  int64_t modifiedNs = 0;  // the nanoseconds of the modification time (for the ETag)
};

class TimelapseStore {
 public:
  // `current` is the timelapse_storage setting ("internal" | "usb").
  TimelapseStore(std::vector<TimelapseStorage> options, std::string current);

  // Replace the options / the selected storage (after a settings change).
  void configure(std::vector<TimelapseStorage> options, std::string current);

  // Every video of every available storage, in directory order (the page sorts).
  std::vector<TimelapseVideo> list();

  // Open "<name>.mp4" (`name` with or without ".mp4") for reading. `storage` "" = the current
  // storage first, then the others. Errors: InvalidArgument (a bad name, a symbolic link, not a
  // regular file), NoDevice (no such video), Io.
  hal::Result<TimelapseFile> openVideo(std::string_view name, std::string_view storage = "");

  // Open a video's thumbnail: `name` is a video name, with or without ".mp4" (its thumbnail
  // with the most frames), or a
  // thumbnail's own file name ending in ".jpg". Errors as openVideo().
  hal::Result<TimelapseFile> openThumbnail(std::string_view name, std::string_view storage = "");

  // Delete "<name>.mp4" and its thumbnails, nothing else; returns the file names removed.
  // Errors: InvalidArgument (a bad name, or the video is a symbolic link or not a regular file:
  // nothing is removed), NoDevice (no such video), Io (with the file that could not be removed).
  hal::Result<std::vector<std::string>> remove(std::string_view name, std::string_view storage = "");

  // {"current": id, "options": [{"id", "label", "path", "available", "free_bytes"}]}: free_bytes
  // from statvfs (bytes available to unprivileged users), null when the storage is unavailable.
  std::string storageJson();

  // {"videos": [...]} as timelapse.js expects (see there): name, size, frames, duration, date
  // (Unix seconds), thumb (URL path, only when there is a thumbnail) and storage.
  std::string listJson();

  // For the recorder: the folder new recordings go to, created when missing: the current
  // storage, or internal storage when the current one is unavailable (USB stick not mounted).
  // Errors: Io (cannot create the folder), NoDevice (no storage available at all).
  hal::Result<std::filesystem::path> recordingFolder();

  // Whether a storage is usable now: its mount point (if any) is mounted and its folder exists
  // or its parent does (so it can be created).
  static bool available(const TimelapseStorage& storage);

 private:
  struct Cached {
    uint64_t size = 0;
    int64_t mtimeNs = 0;
    double duration = 0;
    int64_t samples = 0;
  };
  std::vector<const TimelapseStorage*> searchOrder(std::string_view storage) const;
  void probe(int dirFd, const std::string& key, const std::string& file, uint64_t size, int64_t mtimeNs,
             TimelapseVideo& video);

  std::mutex mutex_;  // guards everything below
  std::vector<TimelapseStorage> options_;
  std::string current_;
  std::map<std::string, Cached> cache_;  // "<storage>/<file>" -> what the MP4 said
};

// The duration (seconds) and sample count of an MP4 file from its moov box (mvhd duration /
// timescale, else the first track's mdhd; stsz sample_count of the first track), read with a
// few pread() calls. ISO/IEC 14496-12 8.2.2 (mvhd), 8.4.2 (mdhd), 8.7.3 (stsz).
// Errors: InvalidArgument (no moov, truncated or bad boxes), Io.
struct Mp4Summary {
  double durationSeconds = 0;
  int64_t samples = 0;
};
hal::Result<Mp4Summary> readMp4Summary(int fd);

}  // namespace printcast::streamer
