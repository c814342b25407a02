// SPDX-License-Identifier: MIT
// POST /api/cameras/discover on the control port: ONVIF discovery of the LAN's IP cameras
// (transport/onvif.h, docs/onvif.md), run on a worker thread of its own and answered with a
// deferred response, so neither the server thread nor the control port's file work waits for
// the network (a discovery takes its window, 5 s by default, plus the cameras' answers).
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/result.h"
#include "printcast/transport/http_server.h"
#include "printcast/transport/onvif.h"

namespace printcast::streamer {

// The options of one discovery from the request body: "" or a JSON object with optional
// "user", "password", "address" ("host[:port]": a unicast probe of that camera instead of the
// multicast one) and "seconds" (the window, 1 to 30; default 5).
// Errors: InvalidArgument, naming the key and what it must be.
hal::Result<transport::onvif::DiscoveryOptions> parseDiscoverRequest(const std::string& body);

// The answer: an array of {"name", "hardware", "xaddr", "endpoint", "clock_offset_seconds",
// "profiles": [{"token", "name", "width", "height", "encoding", "rtsp", "error"}], "error"}, one
// per camera in the order they answered. Passwords are never in it: not the request's, and an
// RTSP URI the camera gave with user:password@ loses them.
std::string discoverResponseJson(const std::vector<transport::onvif::Camera>& cameras);

// Threading: handle() runs on the server thread and only checks and queues; the discovery runs
// on the worker (one at a time, two more may wait: more get 503).
class CameraDiscovery {
 public:
  CameraDiscovery();
  ~CameraDiscovery();
  CameraDiscovery(const CameraDiscovery&) = delete;
  CameraDiscovery& operator=(const CameraDiscovery&) = delete;

  // POST /api/cameras/discover (Content-Type: application/json): 200 with the candidates
  // (deferred); 400 for a bad body or an address that does not resolve; 405 for another method;
  // 415 without the JSON media type; 501 when the build has no ONVIF; 502 when the Probe could not
  // be sent; 503 when the queue is full or the streamer is stopping.
  transport::HttpResponse handle(const transport::HttpRequest& req);

  // Ends a discovery in progress early (it answers what it found so far) and answers the queued
  // ones 503; joins the worker. Idempotent.
  void stop();

 private:
  int cancelFd_ = -1;  // an eventfd: readable once stop() is called
  std::unique_ptr<transport::BlockingWorker> worker_;
};

}  // namespace printcast::streamer
