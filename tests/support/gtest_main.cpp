// SPDX-License-Identifier: MIT
// main() of every GoogleTest binary of printcast (unit, integration, lab), in place of
// GoogleTest's own: the same, plus the project's rule for skips.
//
// A test may skip only when this kind of machine cannot run it, and it must say so: its skip
// message contains "machine: " followed by the reason (for example "machine: cannot exec target
// binaries here (qemu-user without binfmt_misc)"). Under CI (environment CI=true, or
// PRINTCAST_STRICT_SKIPS=1) any other skip fails the binary, so a backend that was not built
// or a device the test forgot to fake can never pass CI by skipping. Elsewhere skips are
// reported as usual.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

bool strictSkips() {
  const char* ci = std::getenv("CI");
  const char* strict = std::getenv("PRINTCAST_STRICT_SKIPS");
  return (ci != nullptr && std::strcmp(ci, "true") == 0) ||
         (strict != nullptr && std::strcmp(strict, "1") == 0);
}

// Collects the skips whose message names no machine reason.
class SkipPolicy : public testing::EmptyTestEventListener {
 public:
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.skipped()) return;
    const std::string message = result.message() == nullptr ? "" : result.message();
    if (message.find("machine: ") != std::string::npos) return;
    const testing::TestInfo* test = testing::UnitTest::GetInstance()->current_test_info();
    const std::string name =
        test == nullptr ? "?" : std::string(test->test_suite_name()) + "." + test->name();
    unexplained_.push_back(name + ": " + (message.empty() ? "(no reason given)" : message));
  }
  const std::vector<std::string>& unexplained() const { return unexplained_; }

 private:
  std::vector<std::string> unexplained_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  auto* policy = new SkipPolicy;  // owned by GoogleTest's listener list
  testing::UnitTest::GetInstance()->listeners().Append(policy);
  const int rc = RUN_ALL_TESTS();
  if (strictSkips() && !policy->unexplained().empty()) {
    std::cerr << "FAILED under CI: " << policy->unexplained().size()
              << " test(s) skipped without a reason of the machine (\"machine: ...\"):\n";
    for (const auto& line : policy->unexplained()) std::cerr << "  " << line << "\n";
    return 1;
  }
  return rc;
}
