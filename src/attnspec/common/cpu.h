// Run-time CPU features for the few hand-vectorised loops: the binary itself stays portable
// (built for baseline x86-64) and picks the AVX2 path once, on CPUs that have it.
#pragma once

namespace attnspec {

inline bool cpu_has_avx2_fma() {
#if defined(__x86_64__)
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace attnspec
