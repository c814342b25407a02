// SPDX-License-Identifier: MIT
// transport::BlockingWorker: what an HTTP handler must not do on the server thread runs on the
// worker, one job at a time and in order; its result completes the deferred response; a full
// queue and a stopped worker answer 503 at once.
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "printcast/transport/http_server.h"

namespace {

using namespace std::chrono_literals;
using printcast::transport::BlockingWorker;
using printcast::transport::HttpResponse;

// Waits (bounded) until `r`'s deferred response is complete and returns it.
HttpResponse result(HttpResponse& r) {
  EXPECT_TRUE(r.deferred) << "not deferred: " << r.status << " " << r.body;
  if (!r.deferred) return r;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!r.deferred->completed() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(r.deferred->completed());
  return r.deferred->takeResponse();
}

TEST(BlockingWorker, JobsRunInOrderOffTheCallingThread) {
  BlockingWorker worker("test worker");
  std::vector<int> order;
  std::vector<HttpResponse> responses;
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < 5; ++i) {
    responses.push_back(worker.defer([i, &order, caller] {
      EXPECT_NE(std::this_thread::get_id(), caller);
      order.push_back(i);
      return HttpResponse::text(200, std::to_string(i));
    }));
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(result(responses[static_cast<size_t>(i)]).body, std::to_string(i));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(BlockingWorker, AFullQueueAnswers503AtOnce) {
  BlockingWorker worker("test worker", 2);
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::promise<void> started;
  HttpResponse running = worker.defer([open, &started] {
    started.set_value();
    open.wait();
    return HttpResponse::text(200, "slow");
  });
  started.get_future().wait();  // the worker holds the first job; two more may wait
  HttpResponse a = worker.defer([] { return HttpResponse::text(200, "a"); });
  HttpResponse b = worker.defer([] { return HttpResponse::text(200, "b"); });
  const HttpResponse refused = worker.defer([] { return HttpResponse::text(200, "never"); });
  EXPECT_FALSE(refused.deferred);
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("test worker"), std::string::npos) << refused.body;
  gate.set_value();
  EXPECT_EQ(result(running).body, "slow");
  EXPECT_EQ(result(a).body, "a");
  EXPECT_EQ(result(b).body, "b");
}

TEST(BlockingWorker, StopAnswersWaitingJobs503AndRefusesNewOnes) {
  auto worker = std::make_unique<BlockingWorker>("test worker");
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::promise<void> started;
  HttpResponse running = worker->defer([open, &started] {
    started.set_value();
    open.wait();
    return HttpResponse::text(200, "finished");
  });
  started.get_future().wait();
  HttpResponse waiting = worker->defer([] { return HttpResponse::text(200, "never run"); });
  std::thread stopper([&] { worker->stop(); });  // waits for the running job
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!waiting.deferred->completed() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(result(waiting).status, 503);
  gate.set_value();
  stopper.join();
  EXPECT_EQ(result(running).body, "finished");  // the running job completes its own response
  EXPECT_EQ(worker->defer([] { return HttpResponse::text(200, "late"); }).status, 503);
}

}  // namespace
