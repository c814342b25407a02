// SPDX-License-Identifier: MIT
// Anycubic LAN printing mode over the firmware's 0x03-terminated JSON service (see lan_mode.h).
#include "lan_mode.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "printcast/transport/tcp_connect.h"

namespace printcast::streamer {

namespace {

constexpr char kEtx = 0x03;
constexpr size_t kMaxReply = 64 * 1024;  // the firmware's replies are a few dozen bytes
constexpr int kRequestId = 2016;         // the id the firmware's own clients use

}  // namespace

hal::Result<bool> parseLanPrintStatus(std::string_view reply) {
  const auto json = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
  const auto bad = [&](const std::string& why) {
    return hal::Error{hal::Errc::InvalidArgument, 0,
                      fmt::format("LAN mode: {} (reply {:.80})", why, std::string(reply))};
  };
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  if (json.contains("error")) return bad("the firmware answered an error: " + json["error"].dump());
  const auto result = json.find("result");
  if (result == json.end() || !result->is_object()) return bad("no result object");
  const auto open = result->find("open");
  if (open == result->end()) return bad("no result.open");
  if (open->is_boolean()) return open->get<bool>();
  if (open->is_number_integer()) {
    const auto v = open->get<int64_t>();
    if (v == 0 || v == 1) return v == 1;
  }
  return bad("result.open is not 0 or 1");
}

LanModeClient::LanModeClient(LanModeConfig config) : config_(std::move(config)) {}

hal::Result<std::string> LanModeClient::call(std::string_view method) const {
  const auto deadline = std::chrono::steady_clock::now() + config_.timeout;
  auto fd = transport::connectTcp(config_.host, config_.port, config_.timeout);
  if (!fd) return hal::Error{fd.code(), fd.error().errnum, "LAN mode service: " + fd.error().message};
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};
  std::string request = nlohmann::json{{"id", kRequestId}, {"method", method}, {"params", nullptr}}.dump();
  request.push_back(kEtx);
  if (auto st = transport::sendAll(*fd, request.data(), request.size(), config_.timeout); !st) {
    return hal::Error{st.code(), st.error().errnum, "LAN mode service: " + st.error().message};
  }
  std::string reply;
  char buffer[4096];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return hal::Error{hal::Errc::Timeout, 0,
                        fmt::format("LAN mode service {}:{}: no reply to {} within {} ms", config_.host,
                                    config_.port, method, config_.timeout.count())};
    }
    pollfd p{*fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return hal::errnoError("LAN mode service: poll");
    if (ready == 0) continue;  // the deadline check above ends it
    const ssize_t n = ::read(*fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return hal::errnoError("LAN mode service: read");
    if (n == 0) {
      return hal::Error{hal::Errc::Disconnected, 0,
                        fmt::format("LAN mode service {}:{} closed the connection before a whole reply to {}",
                                    config_.host, config_.port, method)};
    }
    reply.append(buffer, static_cast<size_t>(n));
    // The service also broadcasts its own traffic (process_status_update...) to every client: a
    // message with a "method" is not our reply.
    for (auto end = reply.find(kEtx); end != std::string::npos; end = reply.find(kEtx)) {
      const auto json = nlohmann::json::parse(std::string_view(reply).substr(0, end), nullptr, false);
      if (json.is_object() && json.contains("method")) {
        reply.erase(0, end + 1);
        continue;
      }
      reply.resize(end);
      return reply;
    }
    if (reply.size() > kMaxReply) {
      return hal::Error{
          hal::Errc::InvalidArgument, 0,
          fmt::format("LAN mode service: a reply longer than {} bytes without 0x03", kMaxReply)};
    }
  }
}

hal::Result<bool> LanModeClient::query() const {
  auto reply = call("Printer/QueryLanPrintStatus");
  if (!reply) return reply.error();
  return parseLanPrintStatus(*reply);
}

hal::Result<bool> LanModeClient::setOpen(bool open) const {
  auto reply = call(open ? "Printer/OpenLanPrint" : "Printer/CloseLanPrint");
  if (!reply) return reply.error();
  // The reply to Open/Close is not documented beyond being JSON; the state is what a query says.
  if (auto json = nlohmann::json::parse(*reply, nullptr, false);
      !json.is_discarded() && json.contains("error")) {
    return hal::Error{hal::Errc::InvalidArgument, 0,
                      "LAN mode: the firmware refused: " + json["error"].dump()};
  }
  return query();
}

}  // namespace printcast::streamer
