// SPDX-License-Identifier: MIT
// The control port's web pages (apps/streamer/web/), embedded into the binary at build time by
// cmake/embed_web.cmake: plain HTML/CSS/JS, so the device needs no build step and no files.
#pragma once

#include <span>
#include <string_view>

namespace printcast::streamer {

struct WebAsset {
  std::string_view path;         // URL path on the control port ("/control", "/control.js")
  std::string_view contentType;  // "text/html; charset=utf-8", ...
  std::span<const unsigned char> data;
};

// The asset served at `path`, or nullptr. The data lives for the whole program.
const WebAsset* findWebAsset(std::string_view path);

}  // namespace printcast::streamer
