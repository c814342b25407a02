// SPDX-License-Identifier: MIT
// The timelapse manager's store: listing (ignoring temp files, frame folders, symlinks), MP4
// duration and frame count, name validation, symlink escapes, deleting a video and only its
// thumbnails, storage options per board, and the timelapse settings keys.
#include "timelapse_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "printcast/bsp/registry.h"

namespace fs = std::filesystem;
using printcast::hal::Errc;
using printcast::streamer::readMp4Summary;
using printcast::streamer::Settings;
using printcast::streamer::TimelapseStorage;
using printcast::streamer::TimelapseStore;
using printcast::streamer::validateTimelapseName;

namespace {

// Big-endian box building, just for these fixtures (ISO/IEC 14496-12 4.2).
using Bytes = std::vector<uint8_t>;
void put32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}
void put64(Bytes& b, uint64_t v) {
  put32(b, static_cast<uint32_t>(v >> 32));
  put32(b, static_cast<uint32_t>(v));
}
Bytes box(const char* type, const Bytes& payload) {
  Bytes b;
  put32(b, static_cast<uint32_t>(payload.size() + 8));
  b.insert(b.end(), type, type + 4);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A minimal progressive MP4: ftyp, moov (mvhd, trak/mdia/mdhd, minf/stbl/stsz), mdat.
// `version` 0 or 1 for mvhd/mdhd; `moovLast` puts moov after mdat (no faststart).
Bytes makeMp4(uint32_t timescale, uint64_t duration, uint32_t samples, uint8_t version = 0,
              bool moovLast = false, bool mvhdDuration = true) {
  auto header = [&](uint64_t d) {
    Bytes b{version, 0, 0, 0};
    if (version == 1) {
      put64(b, 0);
      put64(b, 0);
      put32(b, timescale);
      put64(b, d);
    } else {
      put32(b, 0);
      put32(b, 0);
      put32(b, timescale);
      put32(b, static_cast<uint32_t>(d));
    }
    b.resize(b.size() + 80, 0);
    return b;
  };
  Bytes stsz{0, 0, 0, 0};
  put32(stsz, 0);
  put32(stsz, samples);
  for (uint32_t i = 0; i < samples; ++i) put32(stsz, 10);
  const Bytes moov =
      box("moov", cat({box("mvhd", header(mvhdDuration ? duration : 0)),
                       box("trak", box("mdia", cat({box("mdhd", header(duration)),
                                                    box("minf", box("stbl", box("stsz", stsz)))})))}));
  const Bytes ftyp = box("ftyp", {'i', 's', 'o', 'm', 0, 0, 2, 0, 'i', 's', 'o', 'm'});
  const Bytes mdat = box("mdat", Bytes(static_cast<size_t>(samples) * 10, 0));
  return moovLast ? cat({ftyp, mdat, moov}) : cat({ftyp, moov, mdat});
}

void writeFile(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void writeFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::set<std::string> filesIn(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

class TimelapseFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/printcast-tlstore-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ / "videos";
    outside_ = root_ / "outside";
    fs::create_directories(dir_);
    fs::create_directories(outside_);
    writeFile(outside_ / "secret.mp4", makeMp4(1000, 5000, 10));
    writeFile(outside_ / "secret_5.jpg", std::string("\xff\xd8 secret thumbnail"));
  }
  void TearDown() override { fs::remove_all(root_); }
  TimelapseStore store() { return TimelapseStore({{"internal", "internal storage", dir_, {}}}, "internal"); }
  fs::path root_, dir_, outside_;
};

}  // namespace

TEST(TimelapseMp4, DurationFromMvhdAndSamplesFromStsz) {
  char path[] = "/tmp/printcast-mp4-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  struct Case {
    uint32_t timescale;
    uint64_t duration;
    uint32_t samples;
    uint8_t version;
    bool moovLast;
    bool mvhdDuration;
    double seconds;
  };
  for (const Case c :
       {Case{1000, 3000, 90, 0, false, true, 3.0}, Case{90000, 900000, 300, 1, false, true, 10.0},
        Case{600, 300, 15, 0, true, true, 0.5}, Case{1000, 2500, 75, 0, false, false, 2.5}}) {
    const auto bytes = makeMp4(c.timescale, c.duration, c.samples, c.version, c.moovLast, c.mvhdDuration);
    ASSERT_EQ(::ftruncate(fd, 0), 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    auto s = readMp4Summary(fd);
    ASSERT_TRUE(s) << s.error().describe();
    EXPECT_DOUBLE_EQ(s->durationSeconds, c.seconds);
    EXPECT_EQ(s->samples, c.samples);
  }
  // Not an MP4 / truncated: an error, never a crash.
  for (const std::string& junk : {std::string(), std::string("hello world, not an mp4 at all"),
                                  std::string("\x00\x00\x00\x10moov\x00\x00", 10)}) {
    ASSERT_EQ(::ftruncate(fd, 0), 0);
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    EXPECT_FALSE(readMp4Summary(fd));
  }
  ::close(fd);
  ::unlink(path);
}

TEST(TimelapseNames, ValidationTable) {
  struct Case {
    std::string name;
    bool ok;
  };
  const Case cases[] = {
      {"benchy_3", true},
      {"Benchy PLA 0.2mm_12", true},
      {"benchy.gcode_1", true},
      {"a/b", false},
      {"a\\b", false},
      {"..", false},
      {".", false},
      {"../../etc/passwd", false},
      {"a..b", false},
      {"/etc/passwd", false},
      {"/", false},
      {std::string("abc\0.mp4", 8), false},
      {"tab\there", false},
      {".hidden", false},
      {"", false},
      {std::string(201, 'x'), false},
      {std::string(200, 'x'), true},
  };
  for (const auto& c : cases) {
    const auto st = validateTimelapseName(c.name);
    EXPECT_EQ(static_cast<bool>(st), c.ok) << "'" << c.name << "'";
    if (!st) {
      EXPECT_EQ(st.code(), Errc::InvalidArgument);
    }
  }
}

TEST_F(TimelapseFolder, ListsVideosWithThumbnailsAndIgnoresEverythingElse) {
  writeFile(dir_ / "benchy_1.mp4", makeMp4(1000, 3000, 90));
  writeFile(dir_ / "benchy_1_90.jpg", std::string("\xff\xd8 thumb"));
  writeFile(dir_ / "benchy_1_12.jpg", std::string("\xff\xd8 older thumb"));
  writeFile(dir_ / "cube_2.mp4", makeMp4(90000, 450000, 40));  // no thumbnail: frames from stsz
  writeFile(dir_ / "cube_3.mp4.part", makeMp4(1000, 1000, 3));
  writeFile(dir_ / "cube_3.mp4.mdat.part", std::string("partial"));
  writeFile(dir_ / ".app.json.Xy12", std::string("{}"));
  writeFile(dir_ / "notes.txt", std::string("x"));
  fs::create_directories(dir_ / "cube_3");  // the recorder's frame folder of a print in progress
  writeFile(dir_ / "cube_3" / "frame_000001.jpg", std::string("\xff\xd8"));
  fs::create_directories(dir_ / "folder.mp4");
  fs::create_symlink(outside_ / "secret.mp4", dir_ / "link.mp4");

  auto s = store();
  auto videos = s.list();
  std::sort(videos.begin(), videos.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  ASSERT_EQ(videos.size(), 2u);
  EXPECT_EQ(videos[0].name, "benchy_1");
  EXPECT_EQ(videos[0].storage, "internal");
  EXPECT_DOUBLE_EQ(videos[0].durationSeconds, 3.0);
  EXPECT_EQ(videos[0].frames, 90);
  EXPECT_EQ(videos[0].thumbnail, "benchy_1_90.jpg");
  EXPECT_EQ(videos[0].sizeBytes, fs::file_size(dir_ / "benchy_1.mp4"));
  EXPECT_GT(videos[0].modifiedUnix, 1600000000);
  EXPECT_EQ(videos[1].name, "cube_2");
  EXPECT_DOUBLE_EQ(videos[1].durationSeconds, 5.0);
  EXPECT_EQ(videos[1].frames, 40);
  EXPECT_EQ(videos[1].thumbnail, "");

  const auto json = nlohmann::json::parse(s.listJson());
  ASSERT_EQ(json["videos"].size(), 2u);
  for (const auto& v : json["videos"]) {
    for (const char* key : {"name", "size", "frames", "duration", "date", "storage"})
      EXPECT_TRUE(v.contains(key)) << key;
    if (v["name"] == "benchy_1") {
      EXPECT_EQ(v["thumb"], "/api/timelapse/thumb/benchy_1_90.jpg?storage=internal");
    } else {
      EXPECT_FALSE(v.contains("thumb"));
    }
  }

  // The duration cache follows a replaced file.
  writeFile(dir_ / "cube_2.mp4", makeMp4(1000, 7000, 70, 0, false, true));
  ::utimensat(AT_FDCWD, (dir_ / "cube_2.mp4").c_str(), nullptr, 0);
  videos = s.list();
  auto cube = std::find_if(videos.begin(), videos.end(), [](const auto& v) { return v.name == "cube_2"; });
  ASSERT_NE(cube, videos.end());
  EXPECT_DOUBLE_EQ(cube->durationSeconds, 7.0);
}

TEST_F(TimelapseFolder, OpensVideosWithOrWithoutExtension) {
  writeFile(dir_ / "benchy_1.mp4", makeMp4(1000, 3000, 90));
  auto s = store();
  for (const char* name : {"benchy_1", "benchy_1.mp4"}) {
    auto f = s.openVideo(name);
    ASSERT_TRUE(f) << f.error().describe();
    EXPECT_EQ(f->sizeBytes, fs::file_size(dir_ / "benchy_1.mp4"));
    EXPECT_EQ(f->fileName, "benchy_1.mp4");
    ::close(f->fd);
  }
  EXPECT_EQ(s.openVideo("nope").code(), Errc::NoDevice);
  EXPECT_EQ(s.openVideo("benchy_1", "usb").code(), Errc::InvalidArgument);  // no such storage here
}

TEST_F(TimelapseFolder, NeverLeavesTheFolder) {
  writeFile(dir_ / "benchy_1.mp4", makeMp4(1000, 3000, 90));
  fs::create_symlink(outside_ / "secret.mp4", dir_ / "escape.mp4");
  fs::create_symlink(outside_ / "secret_5.jpg", dir_ / "escape_5.jpg");
  fs::create_symlink(dir_ / "benchy_1.mp4", dir_ / "inner.mp4");  // even a link to a sibling is refused
  ASSERT_EQ(::mkfifo((dir_ / "fifo.mp4").c_str(), 0600), 0);      // must not block the open
  auto s = store();
  const std::string attempts[] = {
      "../outside/secret",           "../outside/secret.mp4",       "..", "%2e%2e", "a\\b",
      outside_.string() + "/secret", std::string("benchy_1\0x", 10)};
  for (const auto& name : attempts) {
    auto v = s.openVideo(name);
    EXPECT_FALSE(v) << name;
    // "%2e%2e" is a literal (already decoded) name: no such file; the rest are refused as bad names.
    EXPECT_EQ(v.code(), name == "%2e%2e" ? Errc::NoDevice : Errc::InvalidArgument) << name;
    EXPECT_FALSE(s.openThumbnail(name)) << name;
    EXPECT_FALSE(s.remove(name)) << name;
  }
  for (const char* name : {"escape", "inner", "fifo"}) {
    auto v = s.openVideo(name);
    ASSERT_FALSE(v) << name;
    EXPECT_EQ(v.code(), Errc::InvalidArgument) << name << ": " << v.error().describe();
    auto r = s.remove(name);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.code(), Errc::InvalidArgument) << name;
  }
  EXPECT_EQ(s.openThumbnail("escape_5.jpg").code(), Errc::InvalidArgument);
  EXPECT_FALSE(s.openThumbnail("escape"));  // its only "thumbnail" is a link: not served
  // Nothing was touched.
  EXPECT_TRUE(fs::exists(outside_ / "secret.mp4"));
  EXPECT_TRUE(fs::exists(outside_ / "secret_5.jpg"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "escape.mp4"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "inner.mp4"));
  EXPECT_TRUE(fs::exists(dir_ / "benchy_1.mp4"));
}

TEST_F(TimelapseFolder, DeleteRemovesTheVideoAndItsThumbnailsOnly) {
  for (const char* f : {"benchy_3.mp4", "benchy_3_5.mp4", "benchy_30.mp4", "benchy_3x.mp4"}) {
    writeFile(dir_ / f, makeMp4(1000, 1000, 30));
  }
  for (const char* f : {"benchy_3_120.jpg", "benchy_3_7.jpg", "benchy_3_5_60.jpg", "benchy_30_10.jpg",
                        "benchy_3x_1.jpg", "benchy_3.jpg", "benchy_3_a.jpg"}) {
    writeFile(dir_ / f, std::string("\xff\xd8"));
  }
  writeFile(dir_ / "benchy_3.mp4.part", std::string("in progress"));
  fs::create_directories(dir_ / "benchy_3");
  writeFile(dir_ / "benchy_3" / "frame_000001.jpg", std::string("\xff\xd8"));
  fs::create_symlink(outside_ / "secret_5.jpg", dir_ / "benchy_3_99.jpg");

  auto s = store();
  auto before = filesIn(dir_);
  auto removed = s.remove("benchy_3");
  ASSERT_TRUE(removed) << removed.error().describe();
  std::set<std::string> got(removed->begin(), removed->end());
  EXPECT_EQ(got, (std::set<std::string>{"benchy_3.mp4", "benchy_3_120.jpg", "benchy_3_7.jpg"}));
  for (const auto& f : got) before.erase(f);
  EXPECT_EQ(filesIn(dir_), before);  // everything else is still there
  EXPECT_TRUE(fs::exists(dir_ / "benchy_3" / "frame_000001.jpg"));
  EXPECT_TRUE(fs::exists(outside_ / "secret_5.jpg"));

  EXPECT_EQ(s.remove("benchy_3").code(), Errc::NoDevice);  // already gone
  auto second = s.remove("benchy_3_5.mp4");                // with the extension too
  ASSERT_TRUE(second);
  EXPECT_EQ(std::set<std::string>(second->begin(), second->end()),
            (std::set<std::string>{"benchy_3_5.mp4", "benchy_3_5_60.jpg"}));
}

TEST_F(TimelapseFolder, ThumbnailOfAVideoIsTheOneWithMostFrames) {
  writeFile(dir_ / "benchy_1.mp4", makeMp4(1000, 3000, 90));
  writeFile(dir_ / "benchy_1_12.jpg", std::string("small"));
  writeFile(dir_ / "benchy_1_90.jpg", std::string("large thumbnail"));
  writeFile(dir_ / "benchy_1_5_3.jpg", std::string("another video's"));
  auto s = store();
  auto t = s.openThumbnail("benchy_1");
  ASSERT_TRUE(t) << t.error().describe();
  EXPECT_EQ(t->fileName, "benchy_1_90.jpg");
  ::close(t->fd);
  auto exact = s.openThumbnail("benchy_1_12.jpg");
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->fileName, "benchy_1_12.jpg");
  ::close(exact->fd);
  EXPECT_EQ(s.openThumbnail("notes.jpg").code(), Errc::InvalidArgument);  // not a thumbnail name
  EXPECT_EQ(s.openThumbnail("cube_1").code(), Errc::NoDevice);
}

TEST_F(TimelapseFolder, StorageJsonAndRecordingFolder) {
  const fs::path usbMount = root_ / "udisk";  // a plain folder: not a mount point
  fs::create_directories(usbMount);
  TimelapseStore s({{"internal", "internal storage", dir_ / "new", {}},
                    {"usb", "USB stick", usbMount / "Time-lapse-Video", usbMount}},
                   "usb");
  auto json = nlohmann::json::parse(s.storageJson());
  EXPECT_EQ(json["current"], "usb");
  ASSERT_EQ(json["options"].size(), 2u);
  EXPECT_EQ(json["options"][0]["id"], "internal");
  EXPECT_EQ(json["options"][0]["available"], true);  // missing, but its parent exists
  EXPECT_GT(json["options"][0]["free_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(json["options"][0]["path"], (dir_ / "new").string());
  EXPECT_EQ(json["options"][1]["id"], "usb");
  EXPECT_EQ(json["options"][1]["available"], false);  // not mounted
  EXPECT_TRUE(json["options"][1]["free_bytes"].is_null());
  // USB unplugged: recordings go to internal storage, whose folder is created.
  auto folder = s.recordingFolder();
  ASSERT_TRUE(folder) << folder.error().describe();
  EXPECT_EQ(*folder, dir_ / "new");
  EXPECT_TRUE(fs::is_directory(dir_ / "new"));
  EXPECT_FALSE(fs::exists(usbMount / "Time-lapse-Video"));
  // A real mount point (/proc) counts as mounted.
  EXPECT_TRUE(TimelapseStore::available({"usb", "x", dir_, "/proc"}));
}

TEST(TimelapseStorageOptions, PerBoard) {
  auto ks1 = printcast::bsp::findBoard("anycubic-ks1");
  auto virt = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(ks1);
  ASSERT_TRUE(virt);
  Settings s;
  auto opts = printcast::streamer::timelapseStorageOptions(s, **ks1);
  ASSERT_EQ(opts.size(), 2u);
  EXPECT_EQ(opts[0].id, "internal");
  EXPECT_EQ(opts[0].path, "/useremain/app/gk/Time-lapse-Video");
  EXPECT_EQ(opts[1].id, "usb");
  EXPECT_EQ(opts[1].path, "/mnt/udisk/Time-lapse-Video");
  EXPECT_EQ(opts[1].mountPoint, "/mnt/udisk");

  opts = printcast::streamer::timelapseStorageOptions(s, **virt);  // no board folder: per-user data
  ASSERT_EQ(opts.size(), 1u);
  EXPECT_NE(opts[0].path.string().find("printcast"), std::string::npos) << opts[0].path;
  EXPECT_TRUE(opts[0].path.is_absolute());

  s.timelapseFolder = "/tmp/tl";  // the override replaces both on a Kobra
  opts = printcast::streamer::timelapseStorageOptions(s, **ks1);
  ASSERT_EQ(opts.size(), 1u);
  EXPECT_EQ(opts[0].path, "/tmp/tl");
}

TEST(TimelapseSettings, KeysAndValidation) {
  using printcast::streamer::timelapseSettingKeys;
  using printcast::streamer::validateSettingsChange;
  auto ks1 = printcast::bsp::findBoard("anycubic-ks1");
  auto virt = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(ks1 && virt);
  const auto& keys = timelapseSettingKeys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "timelapse_storage"), keys.end());
  EXPECT_EQ(std::find(keys.begin(), keys.end(), "timelapse_folder"), keys.end());
  for (const auto& k : keys) EXPECT_TRUE(k.rfind("timelapse_", 0) == 0 || k.rfind("moonraker_", 0) == 0) << k;

  Settings current;
  Settings next;
  std::vector<std::string> changed;
  std::string errorKey;
  auto st =
      validateSettingsChange(R"({"timelapse_storage":"usb"})", **ks1, current, next, changed, errorKey, keys);
  ASSERT_TRUE(st) << st.error().describe();
  EXPECT_EQ(next.timelapseStorage, "usb");
  EXPECT_EQ(changed, std::vector<std::string>{"timelapse_storage"});

  struct Bad {
    const char* body;
    const char* key;
  };
  for (const Bad b : {Bad{R"({"timelapse_storage":"usb"})", "timelapse_storage"},  // virtual: no USB
                      Bad{R"({"timelapse_storage":"cloud"})", "timelapse_storage"},
                      Bad{R"({"timelapse_folder":"/"})", "timelapse_folder"},  // not over HTTP
                      Bad{R"({"bitrate":1024})", "bitrate"},                   // not a timelapse key
                      Bad{R"([1])", ""}}) {
    next = current;
    st = validateSettingsChange(b.body, **virt, current, next, changed, errorKey, keys);
    EXPECT_FALSE(st) << b.body;
    EXPECT_EQ(errorKey, b.key) << b.body << ": " << (st ? "" : st.error().message);
  }
  // And the runtime API does not take timelapse keys.
  st = validateSettingsChange(R"({"timelapse_storage":"internal"})", **ks1, current, next, changed, errorKey);
  EXPECT_FALSE(st);

  // The config file: timelapse_folder must be absolute.
  Settings s;
  std::vector<std::string> warnings;
  EXPECT_TRUE(
      printcast::streamer::applyConfigJson(R"({"timelapse_folder":"/data/tl"})", "app.json", s, warnings));
  EXPECT_EQ(s.timelapseFolder, "/data/tl");
  EXPECT_FALSE(
      printcast::streamer::applyConfigJson(R"({"timelapse_folder":"rel"})", "app.json", s, warnings));
}
