// Run-time choice of the kernel implementation, as simdjson does it: a table of implementations,
// each with the CPU features it needs; the best one this machine supports is used unless the caller
// names another.
#pragma once

#include <vector>

#include "../kernels/kernels.h"

namespace gt {

struct Implementation {
  const char* name;
  bool supported;   // compiled in, the CPU has the instructions and the OS saves their registers
  bool by_default;  // eligible as the best implementation (CUDA is opt-in)
  const KernelTable* table;
};

// Best first; "scalar" is always last and always supported.
const std::vector<Implementation>& implementations();

// The best supported implementation that is eligible by default.
const KernelTable& best_implementation();

// nullptr when `name` is unknown or not supported here.
const KernelTable* find_implementation(const char* name);

}  // namespace gt
