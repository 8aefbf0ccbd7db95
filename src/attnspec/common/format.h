// How numbers leave attnspec in CSV files: 10 significant digits, "nan" for anything not finite.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace attnspec {

inline std::string format_number(double v) {
  if (!std::isfinite(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace attnspec
