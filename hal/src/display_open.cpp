// SPDX-License-Identifier: MIT
// Opening a display capture from candidate nodes: DRM/KMS cards first, fbdev as the fallback.
#include "printcast/hal/display_open.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>
#include <utility>

#include "printcast/hal/display_drm.h"
#include "printcast/hal/display_fbdev.h"

namespace printcast::hal {

Result<std::unique_ptr<DisplayCapture>> openDisplayCapture(const DisplayCandidates& candidates,
                                                           Syscalls& sys) {
  using R = Result<std::unique_ptr<DisplayCapture>>;
  if (candidates.drmCards.empty() && candidates.fbdevNodes.empty()) {
    return R(Errc::NoDevice,
             "display: no DRM card (/dev/dri/card*) and no framebuffer (/dev/fb*) on this machine");
  }
  std::string reasons;
  Errc code = Errc::NoDevice;
  bool permission = false;
  auto note = [&](Error e) {
    permission = permission || e.code == Errc::PermissionDenied;
    code = e.code;
    if (!reasons.empty()) reasons += "; ";
    reasons += e.describe();
  };
  for (const std::string& card : candidates.drmCards) {
    auto capture = createDrmDisplayCapture(card, sys);
    if (capture) return capture;
    note(std::move(capture).error());
  }
  for (const std::string& node : candidates.fbdevNodes) {
    auto capture = createFbdevDisplayCapture(node, sys);
    if (capture) return capture;
    note(std::move(capture).error());
  }
  return R(permission ? Errc::PermissionDenied : code, "display: nothing to capture: " + reasons);
}

std::vector<std::string> listNumberedNodes(const std::string& dir, std::string_view prefix) {
  std::vector<std::pair<int, std::string>> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || !name.starts_with(prefix)) continue;
    int number = 0;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size();
    auto [ptr, err] = std::from_chars(first, last, number);
    if (err != std::errc() || ptr != last) continue;
    found.emplace_back(number, it->path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& [number, path] : found) out.push_back(std::move(path));
  return out;
}

}  // namespace printcast::hal
