// SPDX-License-Identifier: MIT
// Board registry, board data invariants, touch mapping against the upstream tables, detection.
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "../../bsp/platforms/anycubic_kobra.h"
#include "printcast/bsp/board.h"
#include "printcast/bsp/devices.h"
#include "printcast/bsp/registry.h"
#include "printcast/hal/transform.h"
#include "printcast/hal/v4l2.h"

namespace {

using printcast::bsp::allBoards;
using printcast::bsp::Board;
using printcast::bsp::CameraKind;
using printcast::bsp::detectBoard;
using printcast::bsp::DisplayKind;
using printcast::bsp::findBoard;
using printcast::bsp::TouchKind;
using printcast::hal::Errc;
using printcast::hal::Point;
using printcast::hal::Size;
using printcast::hal::Transform;
namespace fs = std::filesystem;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The symbol bsp/CMakeLists.txt derives from a folder name: anycubic-k3v2 -> kBoardAnycubicK3v2.
std::string symbolFor(std::string_view id) {
  std::string out = "kBoard";
  bool upper = true;
  for (char c : id) {
    if (c == '-') {
      upper = true;
      continue;
    }
    out += (upper && c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    upper = false;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The seed table, written out from the upstream sources and NOT from the board files:
// h264-streamer touch_inject.c transform_coordinates() (web/view x, y -> panel x, y on the
// 800x480 hyn_ts panel) and the orientation each model id gets there (product.md "Boards").
// A board with touch needs a row here: its transform is checked against these formulas.
struct Seed {
  std::string_view id;
  int orientationDegreesClockwise;  // product.md "display orientation"
  Point (*viewToPanel)(Point viewPos);
};

Point flip180(Point p) { return {800 - p.x, 480 - p.y}; }  // ORIENT_FLIP_180
Point rotate90(Point p) { return {p.y, 480 - p.x}; }       // ORIENT_ROTATE_90
Point rotate270(Point p) { return {800 - p.y, p.x}; }      // ORIENT_ROTATE_270

constexpr std::array<Seed, 7> kSeeds{{
    {"anycubic-ks1", 180, flip180},
    {"anycubic-ks1m", 180, flip180},
    {"anycubic-k3", 90, rotate90},
    {"anycubic-k2p", 90, rotate90},
    {"anycubic-k3v2", 90, rotate90},
    {"anycubic-k3m", 270, rotate270},
    {"virtual", 180, flip180},  // the virtual screen copies the Kobra S1 on purpose
}};

const Seed* seedFor(std::string_view id) {
  for (const Seed& seed : kSeeds) {
    if (seed.id == id) return &seed;
  }
  return nullptr;
}

// Where the board sources are, from this file's own path; nullopt when the tree is not there.
std::optional<fs::path> bspSourceDir() {
  const fs::path dir = fs::path(__FILE__).parent_path().parent_path().parent_path() / "bsp";
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return dir;
  return std::nullopt;
}

std::string readText(const fs::path& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------------------------
// Registry

TEST(BoardRegistry, HoldsTheFallbackAndIsSortedByUniqueId) {
  const auto boards = allBoards();
  ASSERT_FALSE(boards.empty());
  for (const Board* board : boards) ASSERT_NE(board, nullptr);
  for (size_t i = 1; i < boards.size(); ++i) {
    EXPECT_LT(boards[i - 1]->id, boards[i]->id) << "allBoards() must be sorted by id with no duplicates";
  }
  std::set<std::string_view> ids;
  for (const Board* board : boards) EXPECT_TRUE(ids.insert(board->id).second) << board->id;
  EXPECT_TRUE(ids.contains("generic-linux")) << "detection falls back to generic-linux";
}

TEST(BoardRegistry, IdsFollowTheFolderNamingPattern) {
  const std::regex pattern("[a-z0-9]+(-[a-z0-9]+)*");
  for (const Board* board : allBoards()) {
    EXPECT_TRUE(std::regex_match(std::string(board->id), pattern)) << board->id;
  }
  EXPECT_EQ(symbolFor("anycubic-k3v2"), "kBoardAnycubicK3v2");
  EXPECT_EQ(symbolFor("generic-linux"), "kBoardGenericLinux");
}

TEST(BoardRegistry, EveryBoardComesFromTheFolderNamedByItsId) {
  const auto dir = bspSourceDir();
  if (!dir) GTEST_SKIP() << "bsp/ sources not found next to " << __FILE__;
  for (const Board* board : allBoards()) {
    const fs::path file = *dir / std::string(board->id) / "board.cpp";
    ASSERT_TRUE(fs::is_regular_file(file)) << file;
    const std::string text = readText(file);
    EXPECT_TRUE(contains(text, "const Board " + symbolFor(board->id))) << file;
    EXPECT_TRUE(contains(text, ".id = \"" + std::string(board->id) + "\"")) << file;
    EXPECT_TRUE(contains(text, "SPDX-License-Identifier")) << file;
  }
}

// ---------------------------------------------------------------------------------------------
// Board data invariants

TEST(BoardData, RecordsAreComplete) {
  for (const Board* board : allBoards()) {
    SCOPED_TRACE(std::string(board->id));
    EXPECT_FALSE(board->name.empty());

    const auto& display = board->display;
    switch (display.kind) {
      case DisplayKind::None: break;
      case DisplayKind::Memory:
        EXPECT_TRUE(display.node.empty());
        EXPECT_FALSE(display.nativeSize.empty());
        EXPECT_NE(display.format.code, 0u);
        break;
      case DisplayKind::Fbdev:
      case DisplayKind::Drm:
        EXPECT_TRUE(display.node.starts_with("/dev/")) << display.node;
        // Either both known (a printer) or both read from the device when opened (generic).
        EXPECT_EQ(display.nativeSize.empty(), display.format.code == 0u);
        break;
      case DisplayKind::Auto:
        // Whatever the machine has: node, size and format all come from the device.
        EXPECT_TRUE(display.node.empty()) << display.node;
        EXPECT_TRUE(display.nativeSize.empty());
        EXPECT_EQ(display.format.code, 0u);
        break;
    }
    if (display.kind != DisplayKind::None) {
      EXPECT_GE(display.defaultFps, 1);
      EXPECT_LE(display.defaultFps, display.maxFps);
    }

    const auto& touch = board->touch;
    if (touch.kind == TouchKind::Auto) {
      // The first touchscreen found; its range (the ABS extent) and the picture's size are
      // the devices' own, so there is nothing to check but that a picture exists to click on.
      EXPECT_EQ(display.kind, DisplayKind::Auto);
      EXPECT_TRUE(touch.deviceName.empty());
    } else if (touch.kind != TouchKind::None) {
      EXPECT_FALSE(touch.range.empty());
      // Mapping a click needs the size of the picture the user clicks on.
      EXPECT_NE(display.kind, DisplayKind::None);
      EXPECT_FALSE(display.nativeSize.empty());
    }
    if (touch.kind == TouchKind::Evdev) {
      EXPECT_FALSE(touch.deviceName.empty()) << "evdev panels are found by name, never by node index";
    }
    if (touch.kind == TouchKind::Memory) {
      EXPECT_EQ(display.kind, DisplayKind::Memory) << "the in-memory touch panel belongs to a MemoryScreen";
    }

    const auto& camera = board->camera;
    EXPECT_FALSE(camera.defaultSize.empty());
    EXPECT_EQ(camera.defaultSize.width % 2, 0);
    EXPECT_EQ(camera.defaultSize.height % 2, 0);
    EXPECT_LE(camera.defaultSize.width, board->limits.maxCameraSize.width);
    EXPECT_LE(camera.defaultSize.height, board->limits.maxCameraSize.height);
    EXPECT_GE(camera.defaultFps, 1);
    EXPECT_LE(camera.defaultFps, board->limits.maxCameraFps);
    EXPECT_NE(camera.preferredFormat.code, 0u);
    if (camera.kind == CameraKind::TestPattern) {
      EXPECT_EQ(camera.preferredFormat, printcast::hal::fourcc::kI420) << "the test pattern makes I420";
    }

    const auto h264 = board->encoders.h264;
    EXPECT_FALSE(h264.empty());
    for (size_t i = 0; i < h264.size(); ++i) {
      for (size_t j = i + 1; j < h264.size(); ++j) EXPECT_NE(h264[i], h264[j]) << "duplicate encoder";
    }
  }
}

TEST(BoardData, AnycubicModelIdsAreUniqueAndOnlyOnAnycubicBoards) {
  std::set<int> modelIds;
  for (const Board* board : allBoards()) {
    const bool anycubic = board->detection.detector == &printcast::bsp::platforms::kAnycubicDetector;
    const int modelId = anycubic ? board->detection.key : 0;
    if (board->id.starts_with("anycubic-")) {
      EXPECT_GT(modelId, 0) << board->id;
      EXPECT_TRUE(modelIds.insert(modelId).second) << board->id << " reuses modelId " << modelId;
    } else {
      EXPECT_EQ(modelId, 0) << board->id;
    }
  }
}

// Timelapse folders: absolute, USB storage only with the mount point it lives under, and the
// Anycubic stock folders (product.md "Timelapse").
TEST(BoardData, TimelapseStorageFolders) {
  for (const Board* board : allBoards()) {
    const auto& st = board->storage;
    for (std::string_view p : {st.timelapseInternal, st.timelapseUsb, st.usbMount}) {
      if (!p.empty()) {
        EXPECT_TRUE(p.starts_with("/")) << board->id << ": " << p;
      }
    }
    EXPECT_EQ(st.timelapseUsb.empty(), st.usbMount.empty()) << board->id;
    if (!st.timelapseUsb.empty()) {
      EXPECT_TRUE(st.timelapseUsb.starts_with(std::string(st.usbMount) + "/")) << board->id;
    }
    if (board->id.starts_with("anycubic-")) {
      EXPECT_EQ(st.timelapseInternal, "/useremain/app/gk/Time-lapse-Video") << board->id;
      EXPECT_EQ(st.timelapseUsb, "/mnt/udisk/Time-lapse-Video") << board->id;
    }
  }
}

TEST(BoardData, ModelIdsMatchProductTable) {
  // product.md "Boards", also Rinkhals KOBRA_MODEL_ID and h264-streamer MODEL_ID_*.
  const std::array<std::pair<std::string_view, int>, 6> table{{{"anycubic-ks1", 20025},
                                                               {"anycubic-ks1m", 20029},
                                                               {"anycubic-k3", 20024},
                                                               {"anycubic-k2p", 20021},
                                                               {"anycubic-k3v2", 20027},
                                                               {"anycubic-k3m", 20026}}};
  for (const auto& [id, modelId] : table) {
    auto board = findBoard(id);
    if (!board) continue;  // left out of this build by PRINTCAST_BOARDS
    EXPECT_EQ((*board)->detection.detector, &printcast::bsp::platforms::kAnycubicDetector) << id;
    EXPECT_EQ((*board)->detection.key, modelId) << id;
  }
}

// Touch and display are two views of one panel: when the touch range is the scan-out size,
// the touch transform (upright -> panel) must undo the mount orientation (panel -> upright).
TEST(BoardData, TouchTransformUndoesDisplayOrientation) {
  for (const Board* board : allBoards()) {
    // Auto boards know neither the panel's size nor its range until the devices are open.
    if (board->touch.kind == TouchKind::None || board->touch.kind == TouchKind::Auto) continue;
    SCOPED_TRACE(std::string(board->id));
    const Size nativeSize = board->display.nativeSize;
    const Transform orientation = board->display.orientation;
    const Size upright = orientation.apply(nativeSize);
    EXPECT_EQ(board->touch.transform.apply(upright), board->touch.range);
    if (board->touch.range != nativeSize) continue;

    EXPECT_EQ(board->touch.transform, orientation.inverse())
        << "touch " << board->touch.transform.name() << ", orientation " << orientation.name();
    // Semantically: the scan-out pixel at the touched panel position is shown, once turned
    // upright, exactly where the user clicked.
    for (const Point viewPos : {Point{0, 0}, Point{17, 301}, Point{upright.width, upright.height}}) {
      const Point panelPos = board->touch.transform.apply(viewPos, upright);
      EXPECT_EQ(orientation.apply(panelPos, nativeSize), viewPos);
    }
  }
}

// The four corners and the centre of the upright picture, mapped by each board's transform,
// land where the upstream formulas put them.
TEST(BoardData, TouchCornersAndCentreMatchTheSeedTable) {
  int checked = 0;
  for (const Board* board : allBoards()) {
    if (board->touch.kind == TouchKind::None || board->touch.kind == TouchKind::Auto) continue;
    SCOPED_TRACE(std::string(board->id));
    const Seed* seed = seedFor(board->id);
    ASSERT_NE(seed, nullptr) << "add a row for " << board->id
                             << " to kSeeds, written from the board's upstream touch table";

    const auto orientation = Transform::fromDegrees(seed->orientationDegreesClockwise);
    ASSERT_TRUE(orientation.has_value());
    EXPECT_EQ(board->display.orientation, *orientation)
        << "expected " << orientation->name() << ", board has " << board->display.orientation.name();

    const Size upright = board->display.orientation.apply(board->display.nativeSize);
    const int w = upright.width;
    const int h = upright.height;
    for (const Point viewPos : {Point{0, 0}, Point{w, 0}, Point{0, h}, Point{w, h}, Point{w / 2, h / 2}}) {
      const Point panelPos = board->touch.transform.apply(viewPos, upright);
      const Point expected = seed->viewToPanel(viewPos);
      EXPECT_EQ(panelPos, expected) << "viewPos (" << viewPos.x << ", " << viewPos.y << ") -> (" << panelPos.x
                                    << ", " << panelPos.y << "), upstream says (" << expected.x << ", "
                                    << expected.y << ")";
      EXPECT_GE(panelPos.x, 0);
      EXPECT_LE(panelPos.x, board->touch.range.width);
      EXPECT_GE(panelPos.y, 0);
      EXPECT_LE(panelPos.y, board->touch.range.height);
    }
    ++checked;
  }
  for (const Seed& seed : kSeeds) {
    if (findBoard(seed.id)) continue;
    // A seed row for a board this build left out is fine; a typo in it is not.
    EXPECT_TRUE(seed.id.starts_with("anycubic-") || seed.id == "virtual") << seed.id;
  }
  EXPECT_GT(checked, 0);
}

// The seed formulas themselves, spot-checked with numbers rather than formulas.
TEST(BoardData, SeedFormulasSpotCheck) {
  EXPECT_EQ(flip180(Point{0, 0}), (Point{800, 480}));
  EXPECT_EQ(flip180(Point{100, 50}), (Point{700, 430}));
  // K3: the upright picture is 480x800; its top-right corner is the panel's bottom-left.
  EXPECT_EQ(rotate90(Point{480, 0}), (Point{0, 0}));
  EXPECT_EQ(rotate90(Point{0, 0}), (Point{0, 480}));
  EXPECT_EQ(rotate90(Point{240, 400}), (Point{400, 240}));
  // K3M: the upright top-left corner is the panel's top-right.
  EXPECT_EQ(rotate270(Point{0, 0}), (Point{800, 0}));
  EXPECT_EQ(rotate270(Point{480, 800}), (Point{0, 480}));
}

// ---------------------------------------------------------------------------------------------
// findBoard

TEST(FindBoard, FindsEveryBuiltBoard) {
  for (const Board* board : allBoards()) {
    auto found = findBoard(board->id);
    ASSERT_TRUE(found.ok()) << board->id;
    EXPECT_EQ(*found, board);
  }
}

TEST(FindBoard, UnknownIdIsInvalidArgumentListingKnownIds) {
  auto found = findBoard("anycubic-k9");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.code(), Errc::InvalidArgument);
  EXPECT_TRUE(contains(found.error().message, "anycubic-k9")) << found.error().message;
  for (const Board* board : allBoards()) {
    EXPECT_TRUE(contains(found.error().message, board->id)) << found.error().message;
  }
}

TEST(FindBoard, IdsAreExact) {
  EXPECT_EQ(findBoard("").code(), Errc::InvalidArgument);
  EXPECT_EQ(findBoard("Generic-Linux").code(), Errc::InvalidArgument);
  EXPECT_EQ(findBoard("generic-linux ").code(), Errc::InvalidArgument);
  EXPECT_EQ(findBoard("generic").code(), Errc::InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// detectBoard

class DetectBoard : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::path(::testing::TempDir()) / "printcast_boards_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path write(std::string_view text) {
    const fs::path path = dir_ / "api.cfg";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
  // Detect from `text`, expecting success (no override).
  printcast::bsp::DetectionResult detect(std::string_view text) {
    auto result = detectBoard("", write(text));
    EXPECT_TRUE(result.ok());
    if (!result.ok()) return {};
    EXPECT_NE(result->board, nullptr);
    return *result;
  }
  static bool has(std::string_view id) { return findBoard(id).ok(); }

  fs::path dir_;
};

TEST_F(DetectBoard, StringModelIdUnderCloudAsTheFirmwareWritesIt) {
  if (!has("anycubic-ks1")) GTEST_SKIP();
  const auto result = detect(R"({"cloud": {"modelId": "20025", "zone": "global"}, "other": 1})");
  EXPECT_EQ(result.board->id, "anycubic-ks1");
  EXPECT_FALSE(result.fellBack);
  EXPECT_TRUE(contains(result.reason, "20025")) << result.reason;
}

TEST_F(DetectBoard, TopLevelStringModelId) {
  if (!has("anycubic-ks1m")) GTEST_SKIP();
  const auto result = detect(R"({"modelId": "20029"})");
  EXPECT_EQ(result.board->id, "anycubic-ks1m");
  EXPECT_FALSE(result.fellBack);
}

TEST_F(DetectBoard, NumericModelId) {
  if (!has("anycubic-k3")) GTEST_SKIP();
  const auto result = detect(R"({"cloud": {"modelId": 20024}})");
  EXPECT_EQ(result.board->id, "anycubic-k3");
  EXPECT_FALSE(result.fellBack);
}

TEST_F(DetectBoard, CommentsAreAllowed) {
  if (!has("anycubic-k3m")) GTEST_SKIP();
  const auto result = detect(
      "// written by the printer firmware\n"
      "{\n"
      "  /* cloud section */ \"cloud\": {\n"
      "    \"modelId\": \"20026\"  // Kobra 3 Max\n"
      "  }\n"
      "}\n");
  EXPECT_EQ(result.board->id, "anycubic-k3m");
  EXPECT_FALSE(result.fellBack);
}

TEST_F(DetectBoard, EveryAnycubicBoardIsFoundByItsModelIdInBothForms) {
  for (const Board* board : allBoards()) {
    if (board->detection.detector != &printcast::bsp::platforms::kAnycubicDetector) continue;
    const int modelId = board->detection.key;
    EXPECT_EQ(detect(R"({"cloud": {"modelId": ")" + std::to_string(modelId) + "\"}}").board, board);
    EXPECT_EQ(detect(R"({"modelId": )" + std::to_string(modelId) + "}").board, board);
  }
}

TEST_F(DetectBoard, UnknownModelIdFallsBackNamingValueAndPath) {
  const auto result = detect(R"({"cloud": {"modelId": "99999"}})");
  EXPECT_EQ(result.board->id, "generic-linux");
  EXPECT_TRUE(result.fellBack);
  EXPECT_TRUE(contains(result.reason, "99999")) << result.reason;
  EXPECT_TRUE(contains(result.reason, (dir_ / "api.cfg").string())) << result.reason;
}

TEST_F(DetectBoard, GarbageFallsBackNamingThePath) {
  for (std::string_view text : {"{modelId: 20025", "", "\x01\x02\xff", "[20025]", "\"20025\""}) {
    const auto result = detect(text);
    EXPECT_EQ(result.board->id, "generic-linux") << text;
    EXPECT_TRUE(result.fellBack) << text;
    EXPECT_TRUE(contains(result.reason, (dir_ / "api.cfg").string())) << result.reason;
  }
}

TEST_F(DetectBoard, MissingOrMalformedModelIdFallsBack) {
  for (std::string_view text :
       {R"({"cloud": {"zone": "global"}})", R"({"modelId": "abc"})", R"({"modelId": "20025x"})",
        R"({"modelId": ""})", R"({"modelId": true})", R"({"modelId": -20025})", R"({"modelId": 20025.5})",
        R"({"modelId": null})"}) {
    const auto result = detect(text);
    EXPECT_EQ(result.board->id, "generic-linux") << text;
    EXPECT_TRUE(result.fellBack) << text;
    EXPECT_TRUE(contains(result.reason, "modelId")) << result.reason;
  }
}

TEST_F(DetectBoard, MissingFileMeansNotAnAnycubicPrinter) {
  const fs::path missing = dir_ / "no-such-dir" / "api.cfg";
  auto result = detectBoard("", missing);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->board->id, "generic-linux");
  EXPECT_FALSE(result->fellBack) << "a PC without api.cfg is the normal case, not a fallback";
  EXPECT_TRUE(
      contains(result->reason, "no Anycubic config at " + missing.string() + ": not an Anycubic printer"))
      << result->reason;
}

TEST_F(DetectBoard, DirectoryInsteadOfFileFallsBack) {
  auto result = detectBoard("", dir_);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->board->id, "generic-linux");
  EXPECT_TRUE(result->fellBack);
  EXPECT_TRUE(contains(result->reason, dir_.string())) << result->reason;
}

TEST_F(DetectBoard, OverrideWinsOverTheFile) {
  if (!has("virtual")) GTEST_SKIP();
  const fs::path path = write(R"({"cloud": {"modelId": "20025"}})");
  auto result = detectBoard("virtual", path);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->board->id, "virtual");
  EXPECT_FALSE(result->fellBack);
  EXPECT_TRUE(contains(result->reason, "--board")) << result->reason;
}

TEST_F(DetectBoard, UnknownOverrideIsInvalidArgumentEvenWithAGoodFile) {
  const fs::path path = write(R"({"cloud": {"modelId": "20025"}})");
  auto result = detectBoard("kobra-s1", path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.code(), Errc::InvalidArgument);
  EXPECT_TRUE(contains(result.error().message, "kobra-s1")) << result.error().message;
  EXPECT_TRUE(contains(result.error().message, "generic-linux")) << result.error().message;
}

// ---------------------------------------------------------------------------------------------
// Opening devices

TEST(OpenScreen, VirtualBoardSharesOneMemoryScreenForDisplayAndTouch) {
  auto found = findBoard("virtual");
  if (!found) GTEST_SKIP() << "virtual board not built";
  const Board& board = **found;
  auto screen = printcast::bsp::openScreen(board);
  ASSERT_NE(screen.display, nullptr) << screen.displayError;
  ASSERT_NE(screen.touch, nullptr) << screen.touchError;
  EXPECT_TRUE(screen.displayError.empty());
  EXPECT_TRUE(screen.touchError.empty());
  EXPECT_EQ(screen.display->info().size, board.display.nativeSize);
  EXPECT_EQ(screen.display->info().format, board.display.format);
  EXPECT_EQ(screen.touch->info().range, board.touch.range);

  // A click on the upright picture, mapped by the board's transform, marks the scan-out pixel
  // under the panel position: display and touch are one screen.
  const Size upright = board.display.orientation.apply(board.display.nativeSize);
  const Point viewPos{upright.width / 4, upright.height / 5};
  const Point panelPos = board.touch.transform.apply(viewPos, upright);
  auto pixelAt = [&](const printcast::hal::Frame& frame) {
    uint32_t value = 0;
    const auto& plane = frame.plane(0);
    std::memcpy(&value,
                plane.data + static_cast<size_t>(panelPos.y) * static_cast<size_t>(plane.stride) +
                    static_cast<size_t>(panelPos.x) * 4,
                sizeof value);
    return value;
  };
  auto before = screen.display->grab();
  ASSERT_TRUE(before.ok()) << before.error().describe();
  const uint32_t pixelBefore = pixelAt(*before);
  ASSERT_TRUE(screen.touch->tap(panelPos, std::chrono::milliseconds(0)).ok());
  auto after = screen.display->grab();
  ASSERT_TRUE(after.ok()) << after.error().describe();
  EXPECT_NE(pixelAt(*after), pixelBefore)
      << "no tap mark at panel (" << panelPos.x << ", " << panelPos.y << ")";
}

TEST(OpenScreen, MissingDevicesSayWhy) {
  // A machine without screens: an empty folder in place of /dev (with an empty dri/ and input/),
  // whatever this machine has. The real devices are tested in the lab (tests/lab/).
  std::string rootTemplate = (std::filesystem::temp_directory_path() / "printcast-dev-XXXXXX").string();
  ASSERT_NE(::mkdtemp(rootTemplate.data()), nullptr);
  const std::filesystem::path root = rootTemplate;
  std::filesystem::create_directory(root / "dri");
  std::filesystem::create_directory(root / "input");
  printcast::bsp::ScreenOverrides overrides;
  overrides.deviceRoot = root.string();
  for (const Board* board : allBoards()) {
    if (board->display.kind == DisplayKind::Memory) continue;
    SCOPED_TRACE(std::string(board->id));
    auto screen = printcast::bsp::openScreen(*board, overrides);
    EXPECT_EQ(screen.display, nullptr);
    EXPECT_EQ(screen.touch, nullptr);
    EXPECT_FALSE(screen.displayError.empty());
    EXPECT_FALSE(screen.touchError.empty());
    if (board->display.kind == DisplayKind::Fbdev) {
      EXPECT_TRUE(contains(screen.displayError, "fbdev")) << screen.displayError;
      // The board's node, looked for below the device root.
      const std::string node(board->display.node);
      ASSERT_EQ(node.rfind("/dev/", 0), 0U) << node;
      EXPECT_TRUE(contains(screen.displayError, root.string() + node.substr(4))) << screen.displayError;
    }
    if (board->touch.kind == TouchKind::None) {
      EXPECT_TRUE(contains(screen.touchError, "no touch")) << screen.touchError;
    }
    if (board->touch.kind == TouchKind::Evdev) {
      EXPECT_TRUE(contains(screen.touchError, board->touch.deviceName)) << screen.touchError;
      EXPECT_TRUE(contains(screen.touchError, "evdev")) << screen.touchError;
    }
    if (board->display.kind == DisplayKind::Auto) {
      EXPECT_TRUE(contains(screen.displayError, "no-device")) << screen.displayError;
    }
  }
  std::filesystem::remove_all(root);
}

TEST(OpenCamera, TestPatternOpensAndV4L2BoardsAskTheV4L2Backend) {
  for (const Board* board : allBoards()) {
    SCOPED_TRACE(std::string(board->id));
    auto camera = printcast::bsp::openCamera(*board, "");
    if (board->camera.kind == CameraKind::TestPattern) {
      ASSERT_TRUE(camera.ok()) << camera.error().describe();
      EXPECT_NE(camera->get(), nullptr);
    } else if (!printcast::hal::v4l2Available()) {
      ASSERT_FALSE(camera.ok());
      EXPECT_EQ(camera.code(), Errc::Unsupported);
      EXPECT_TRUE(contains(camera.error().message, "V4L2")) << camera.error().message;
    } else if (!camera.ok()) {
      // This machine may or may not have a camera matching the board: either way the V4L2
      // backend answered (no "not built" stand-in).
      EXPECT_NE(camera.code(), Errc::Unsupported) << camera.error().describe();
    }
  }
  // --device asks for a real camera, even on the virtual board, and the error names it.
  if (auto board = findBoard("virtual")) {
    auto camera = printcast::bsp::openCamera(**board, "/dev/printcast-no-such-video7");
    ASSERT_FALSE(camera.ok());
    EXPECT_EQ(camera.code(), printcast::hal::v4l2Available() ? Errc::NoDevice : Errc::Unsupported);
    EXPECT_TRUE(contains(camera.error().message, "/dev/printcast-no-such-video7")) << camera.error().message;
  }
}

}  // namespace

// The streamer's --display-node / --touch-name replace the board's nodes (a bench, the lab VM):
// the backend is picked from the node, and the errors name the overriding node and name.
TEST(Boards, OpenScreenOverridesNameTheReplacedNodes) {
  auto found = findBoard("anycubic-ks1");
  if (!found) GTEST_SKIP() << "anycubic-ks1 not built";
  const std::string fb = "/nonexistent/fb7", card = "/nonexistent/dri/card7", panel = "no_such_panel";
  auto screen = printcast::bsp::openScreen(**found, {fb, panel, ""});
  EXPECT_EQ(screen.display, nullptr);
  EXPECT_EQ(screen.touch, nullptr);
  EXPECT_TRUE(contains(screen.displayError, fb)) << screen.displayError;
  EXPECT_TRUE(contains(screen.displayError, "fbdev")) << screen.displayError;
  EXPECT_TRUE(contains(screen.touchError, panel)) << screen.touchError;
  screen = printcast::bsp::openScreen(**found, {card, "", ""});
  EXPECT_EQ(screen.display, nullptr);
  EXPECT_TRUE(contains(screen.displayError, card)) << screen.displayError;
  EXPECT_TRUE(contains(screen.touchError, "hyn_ts")) << screen.touchError;
}
