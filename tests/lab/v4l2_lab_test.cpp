// SPDX-License-Identifier: MIT
// placeholder
#include <gtest/gtest.h>
