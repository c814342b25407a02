// SPDX-License-Identifier: MIT
// HttpPullCapture: what the HTTP pull captures (MJPEG: mjpeg_pull.cpp, FLV: flv_pull.cpp) share:
// one GET per connection with the URL's credentials answering a 401 challenge (ClientAuth), the
// no-data watchdog, and the end of a stream as the capture's error. Internal to transport.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "network_capture.h"
#include "printcast/transport/http_digest.h"
#include "printcast/transport/http_response.h"
#include "printcast/transport/url.h"

namespace printcast::transport {

// The derived class makes the reader of each response (newResponse()) and hands what it read to
// frames_ (deliver()). run() requests until an error ends the capture; a response that
// answered() (a snapshot) is requested again after pollInterval_.
class HttpPullCapture : public NetworkCapture {
 public:
  struct Request {
    std::chrono::milliseconds connectTimeout;
    std::chrono::milliseconds noDataTimeout;
    std::string userAgent;
    std::string accept;  // the Accept field's value
  };

 protected:
  HttpPullCapture(Url url, std::string driver, hal::FourCC format, Request request);

  // A fresh reader for the next response; it lives until the next call.
  virtual HttpResponseReader& newResponse() = 0;
  // What the reader completed, to frames_. Errors end the capture (frames_.error() once it failed).
  virtual hal::Status deliver() = 0;
  // The complete response is all there is (a snapshot): ask again, no loss.
  virtual bool answered() const { return false; }

  void run() override;

  const Url url_;
  std::atomic<std::chrono::milliseconds> pollInterval_{std::chrono::milliseconds(1000)};

 private:
  // One request; the connection is closed when it returns. Ok when answered(); an error
  // otherwise (a stream only ends by an error).
  hal::Status request();
  // A 401: answer the camera's challenge on the next request, or fail when there is nothing to
  // answer with or the same credentials were already refused.
  hal::Status answerChallenge(const HttpResponseReader& reader);

  const Request request_;
  ClientAuth auth_;  // I/O thread only
  bool retryNow_ = false;
};

}  // namespace printcast::transport
