#include "attnspec/spectra/capped.h"

#include <algorithm>
#include <cmath>

#include "attnspec/spectra/spectra.h"

namespace attnspec {

template <typename T>
std::vector<double> capped_field_singular_values(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale,
                                                 double cap, bool causal, int window) {
  // a: column-major n x n, a[i + j n] = C~_ij.
  std::vector<double> a(size_t(n) * n, 0.0), row(n);
  for (int i = 0; i < n; ++i) {
    const int first = !causal ? 0 : (window > 0 ? std::max(0, i - window + 1) : 0), last = causal ? i : n - 1;
    double mean = 0;
    for (int j = first; j <= last; ++j) {
      double dot = 0;
      for (int t = 0; t < dh; ++t) dot += double(q[long(i) * ldq + t]) * double(k[long(j) * ldk + t]);
      row[j] = cap * std::tanh(scale * dot / cap);
      mean += row[j];
    }
    mean /= (last - first + 1);
    for (int j = first; j <= last; ++j) a[i + size_t(j) * n] = row[j] - mean;
  }
  return dense_singular_values(a.data(), n, n);
}

template std::vector<double> capped_field_singular_values<float>(const float*, long, const float*, long, int, int, double,
                                                                 double, bool, int);
template std::vector<double> capped_field_singular_values<double>(const double*, long, const double*, long, int, int,
                                                                  double, double, bool, int);

}  // namespace attnspec
