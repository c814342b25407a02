// SPDX-License-Identifier: MIT
// The translation unit that builds the unit tests' precompiled header (test_pch.h).
