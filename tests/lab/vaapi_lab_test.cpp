// SPDX-License-Identifier: MIT
// Lab test of the VA-API encoder's refusal on a real DRM render node with no VA-API driver: the
// kernel's vgem (virtual GEM provider) registers /dev/dri/renderD128 behind which libva finds no
// driver, as on a machine whose GPU has no encoder or whose VA driver is not installed. The
// backend must refuse with the node and the reason, and the H.264 selection must fall back to
// x264 keeping that reason. vgem is loaded for this test only (modprobe in the VM, where the
// host's /lib/modules is the booted kernel's) and unloaded at the end, so the display tests never
// see its card. Outside the VM every test skips ("machine:").
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "printcast/codecs/h264_encoders.h"
#include "printcast/codecs/vaapi_encoder.h"

namespace {

namespace fs = std::filesystem;
namespace codecs = printcast::codecs;
using printcast::hal::EncoderBackend;
using printcast::hal::Errc;

std::vector<std::string> renderNodes() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev/dri", ec)) {
    if (e.path().filename().string().rfind("renderD", 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// vgem loaded for the lifetime of this object.
class Vgem {
 public:
  Vgem() {
    before_ = renderNodes();
    loaded_ = std::system("modprobe vgem") == 0;
    for (const auto& n : renderNodes()) {
      if (std::find(before_.begin(), before_.end(), n) == before_.end()) node_ = n;
    }
  }
  ~Vgem() {
    if (loaded_) (void)std::system("rmmod vgem");
  }
  Vgem(const Vgem&) = delete;
  Vgem& operator=(const Vgem&) = delete;
  bool loaded() const { return loaded_; }
  const std::string& node() const { return node_; }  // the render node vgem added

 private:
  std::vector<std::string> before_;
  std::string node_;
  bool loaded_ = false;
};

TEST(VaapiLab, ARenderNodeWithoutAVaDriverIsRefusedAndX264TakesOver) {
  if (std::getenv("PRINTCAST_LAB") == nullptr)
    GTEST_SKIP() << "machine: not in the lab VM (tests/lab/run-lab.sh)";
  Vgem vgem;
  ASSERT_TRUE(vgem.loaded()) << "modprobe vgem failed";
  ASSERT_FALSE(vgem.node().empty()) << "vgem registered no render node";

  auto direct = codecs::createVaapiEncoder({.renderNode = vgem.node()});
  ASSERT_FALSE(direct.ok()) << "libva found an encoder behind vgem";
  std::printf("createVaapiEncoder(%s): %s\n", vgem.node().c_str(), direct.error().describe().c_str());
  EXPECT_EQ(direct.code(), Errc::Unsupported) << direct.error().describe();
  EXPECT_NE(direct.error().message.find("no VA-API driver"), std::string::npos) << direct.error().message;
  EXPECT_NE(direct.error().message.find(vgem.node()), std::string::npos) << direct.error().message;

  // The first render node under /dev/dri (no renderNode given) is vgem's: the same refusal.
  auto scanned = codecs::createVaapiEncoder();
  ASSERT_FALSE(scanned.ok());
  EXPECT_EQ(scanned.code(), direct.code());

  const std::vector order{EncoderBackend::VaApi, EncoderBackend::X264};
  codecs::H264BackendOptions options;
  options.vaapi.renderNode = vgem.node();
  auto encoder = codecs::createH264Encoder(order, options);
  ASSERT_TRUE(encoder->configure({.size = {640, 480}, .fps = 15}).ok());
  EXPECT_EQ(encoder->activeName(), "x264");
  const auto refused = encoder->refusals();
  ASSERT_EQ(refused.size(), 1U);
  EXPECT_EQ(refused[0].backend, "vaapi");
  EXPECT_NE(refused[0].reason.find(vgem.node()), std::string::npos) << refused[0].reason;
}

}  // namespace
