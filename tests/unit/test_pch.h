// SPDX-License-Identifier: MIT
// Precompiled header of the unit tests (tests/CMakeLists.txt): GoogleTest, GoogleMock and the
// standard headers most tests include, parsed once per build instead of once per test binary.
// Only third-party and standard headers belong here: a project header would make every test
// rebuild when it changes. Every test still includes what it uses (the header is an optimisation).
#pragma once
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
