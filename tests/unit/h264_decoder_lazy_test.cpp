// SPDX-License-Identifier: MIT
// The H.264 decoder's lazy load (h264_decoder.h): in a shared build, libavcodec is not in the
// process until the first createH264Decoder(), which loads it once for every thread calling at
// the same time. Its own executable: the name before the first decoder needs a fresh process.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "printcast/codecs/h264_decoder.h"

namespace {

// Whether a library whose file name starts with `prefix` is mapped into this process.
bool mapped(const std::string& prefix) {
  std::ifstream maps("/proc/self/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  return text.find("/" + prefix) != std::string::npos;
}

}  // namespace

TEST(H264DecoderLazyLoad, NameSaysNotLoadedUntilTheFirstDecoderThenTheVersion) {
#ifdef PRINTCAST_AVCODEC_DLOPEN
  EXPECT_EQ(printcast::codecs::h264DecoderName(), "libavcodec (loaded at first use)");
  EXPECT_FALSE(mapped("libavcodec.so")) << "libavcodec is loaded at first use, not linked";
  EXPECT_FALSE(mapped("libavutil.so"));
#endif

  // Four threads ask for the first decoder at once: one load, four decoders.
  std::vector<std::unique_ptr<printcast::codecs::H264Decoder>> decoders(4);
  std::vector<std::string> errors(decoders.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < decoders.size(); ++i) {
    threads.emplace_back([&, i] {
      auto decoder = printcast::codecs::createH264Decoder();
      if (decoder)
        decoders[i] = std::move(*decoder);
      else
        errors[i] = decoder.error().describe();
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < decoders.size(); ++i) ASSERT_NE(decoders[i], nullptr) << errors[i];

  const std::string name = printcast::codecs::h264DecoderName();
  EXPECT_EQ(name.rfind("libavcodec ", 0), 0u) << name;
  EXPECT_NE(name, "libavcodec (loaded at first use)");
  EXPECT_EQ(decoders[0]->name(), name);
#ifdef PRINTCAST_AVCODEC_DLOPEN
  EXPECT_TRUE(mapped("libavcodec.so"));
#else
  // Static builds (the printers' images, armhf-test) link libavcodec in: no shared library.
  EXPECT_FALSE(mapped("libavcodec.so"));
#endif
}
