// SPDX-License-Identifier: MIT
// POST /api/cameras/discover (see camera_discovery.h).
#include "camera_discovery.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "onvif_json.h"

namespace printcast::streamer {

using hal::Errc;
using transport::HttpRequest;
using transport::HttpResponse;
namespace onvif = transport::onvif;

hal::Result<onvif::DiscoveryOptions> parseDiscoverRequest(const std::string& body) {
  onvif::DiscoveryOptions options;
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return options;
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return {Errc::InvalidArgument,
            R"(the body is a JSON object: {"user", "password", "address", "seconds"}, each optional)"};
  }
  for (const auto& [key, value] : json.items()) {
    if (key == "user" || key == "password" || key == "address") {
      if (!value.is_string()) return {Errc::InvalidArgument, fmt::format("'{}' is a string", key)};
      const auto& text = value.get_ref<const std::string&>();
      if (key == "user") options.user = text;
      if (key == "password") options.password = text;
      if (key == "address" && !text.empty()) options.addresses = {text};
    } else if (key == "seconds") {
      if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 1 ||
          value.get<double>() > 30) {
        return {Errc::InvalidArgument, "'seconds' is a number from 1 to 30"};
      }
      options.window = std::chrono::milliseconds(std::lround(value.get<double>() * 1000));
    } else {
      return {Errc::InvalidArgument, fmt::format("unknown key '{}' (user, password, address, seconds)", key)};
    }
  }
  return options;
}

std::string discoverResponseJson(const std::vector<onvif::Camera>& cameras) {
  const nlohmann::json out = apps::onvifCamerasJson(cameras);
  // Cameras' text (names, faults) need not be UTF-8: replace what is not, never throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

CameraDiscovery::CameraDiscovery()
    : cancelFd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      worker_(std::make_unique<transport::BlockingWorker>("camera discovery", 2)) {}

CameraDiscovery::~CameraDiscovery() {
  stop();
  if (cancelFd_ >= 0) ::close(cancelFd_);
}

void CameraDiscovery::stop() {
  if (cancelFd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(cancelFd_, &one, sizeof one);
  }
  worker_->stop();
}

HttpResponse CameraDiscovery::handle(const HttpRequest& req) {
  if (req.method != "POST") {
    return HttpResponse::error(
        405, R"(use POST, with {"user", "password", "address", "seconds"} (each optional))");
  }
  // JSON only, even for an empty body: a cross-origin page cannot send it without a preflight.
  if (!req.hasMediaType("application/json")) {
    const std::string got = req.header("content-type");
    return HttpResponse::error(415, fmt::format("send the body with Content-Type: application/json (got {})",
                                                got.empty() ? "none" : "'" + got + "'"));
  }
  if (!onvif::discoveryBuilt()) {
    return HttpResponse::error(501, "this build has no ONVIF discovery (it needs pugixml: libpugixml-dev)");
  }
  auto options = parseDiscoverRequest(req.body);
  if (!options) return HttpResponse::error(400, options.error().message);
  options->wakeFd = cancelFd_;
  return worker_->defer([options = std::move(*options)] {
    const auto started = std::chrono::steady_clock::now();
    auto cameras = onvif::discover(options);
    if (!cameras) {
      const Errc code = cameras.code();
      return HttpResponse::error(code == Errc::InvalidArgument || code == Errc::NoDevice ? 400
                                 : code == Errc::Unsupported                             ? 501
                                                                                         : 502,
                                 "ONVIF discovery: " + cameras.error().describe());
    }
    spdlog::info(
        "ONVIF discovery: {} camera(s) in {} ms", cameras->size(),
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count());
    return HttpResponse::json(200, discoverResponseJson(*cameras));
  });
}

}  // namespace printcast::streamer
