// SPDX-License-Identifier: MIT
// Board lookup by id and detection of the board this process runs on: each board family's
// detector (Board::detection) reads the machine once, and the board with the key it found wins.
#include <algorithm>
#include <string>
#include <vector>

#include "printcast/bsp/registry.h"

namespace printcast::bsp {

namespace {

constexpr std::string_view kFallbackId = "generic-linux";

std::string knownIds() {
  std::string out;
  for (const Board* board : allBoards()) {
    if (!out.empty()) out += ", ";
    out += board->id;
  }
  return out;
}

DetectionResult fallBack(const Board* fallback, std::string reason, bool fellBack) {
  return DetectionResult{fallback, std::move(reason) + "; using " + std::string(kFallbackId), fellBack};
}

}  // namespace

hal::Result<const Board*> findBoard(std::string_view id) {
  const auto boards = allBoards();
  const auto it = std::lower_bound(boards.begin(), boards.end(), id,
                                   [](const Board* board, std::string_view key) { return board->id < key; });
  if (it != boards.end() && (*it)->id == id) return *it;
  return hal::Result<const Board*>(hal::Errc::InvalidArgument, "unknown board '" + std::string(id) +
                                                                   "' (known boards: " + knownIds() + ")");
}

hal::Result<DetectionResult> detectBoard(std::string_view overrideId,
                                         const std::filesystem::path& apiConfig) {
  if (!overrideId.empty()) {
    auto board = findBoard(overrideId);
    if (!board) return std::move(board).error();
    return DetectionResult{*board, "chosen with --board " + std::string(overrideId), false};
  }

  // generic-linux is always built in (bsp/CMakeLists.txt adds it to any PRINTCAST_BOARDS).
  auto fallbackBoard = findBoard(kFallbackId);
  if (!fallbackBoard) return std::move(fallbackBoard).error();
  const Board* fallback = *fallbackBoard;

  // Each family's detector once (the boards of a family share it), in registry order.
  std::vector<const Detector*> detectors;
  for (const Board* board : allBoards()) {
    const Detector* d = board->detection.detector;
    if (d != nullptr && std::find(detectors.begin(), detectors.end(), d) == detectors.end())
      detectors.push_back(d);
  }
  const DetectionInput input{.anycubicApiConfig = apiConfig};
  std::string reasons;
  bool problem = false;
  for (const Detector* detector : detectors) {
    Detector::Probe probe = detector->probe(input);
    if (probe.key != 0) {
      for (const Board* board : allBoards()) {
        if (board->detection.detector == detector && board->detection.key == probe.key) {
          return DetectionResult{board, probe.reason + " is the " + std::string(board->name), false};
        }
      }
      probe.reason += " is unknown to this build (boards: " + knownIds() + ")";
      probe.problem = true;
    }
    if (!reasons.empty()) reasons += "; ";
    reasons += probe.reason;
    problem = problem || probe.problem;
  }
  if (detectors.empty()) reasons = "no board of this build detects machines";
  return fallBack(fallback, reasons, problem);
}

}  // namespace printcast::bsp
