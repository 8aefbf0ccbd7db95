// The causal energy field E~c (METRICS.md), generalised to sliding windows: for query row i let
// V_i = { j : j <= i and (W == 0 or i - j < W) } be the keys its softmax actually sees (W = the
// layer's sliding window, 0 = none). Then
//   E~c_ij = s (q_i.k_j - mean_{j' in V_i} q_i.k_j')   for j in V_i,   0 otherwise.
// Unlike E~ it has no low-rank shortcut: its singular values come from a dense SVD of the
// materialised n x n matrix for moderate n, and from Golub-Kahan-Lanczos bidiagonalisation with
// matrix-free products beyond. Both products cost O(n d_h) per vector (prefix sums over keys):
//   (E~c x)_i   = s q_i . ( sum_{j in V_i} k_j x_j  -  kbar_i sum_{j in V_i} x_j ),
//   (E~c^T y)_j = s ( k_j . sum_{i : j in V_i} y_i q_i  -  sum_{i : j in V_i} y_i q_i.kbar_i ),
// with kbar_i the mean key over V_i; ||E~c||_F^2 is computed exactly in O(n d_h^2) with running
// (Welford) window covariances, so the variance fractions of the leading values are exact.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "attnspec/spectra/metrics.h"

namespace attnspec {

// E~c as an operator. Holds float64 copies of Q and of the keys (centred by their mean over all n
// positions first: the field is invariant to that shift and the products lose less to cancellation).
class CausalFieldOperator {
 public:
  template <typename T>
  CausalFieldOperator(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale, int window);

  int n() const { return n_; }
  int window() const { return window_; }
  int first_key(int i) const { return window_ > 0 ? (i - window_ + 1 > 0 ? i - window_ + 1 : 0) : 0; }
  void apply(const double* x, double* y) const;    // y = E~c x     (length n each), O(n d_h)
  void apply_t(const double* y, double* x) const;  // x = E~c^T y,                  O(n d_h)
  double frobenius2() const { return frobenius2_; }  // ||E~c||_F^2, exact (O(n d_h^2) at construction)
  std::vector<double> materialise() const;         // n x n column-major, O(n^2 d_h)

 private:
  int n_ = 0, dh_ = 0, window_ = 0;
  double s_ = 1;
  std::vector<double> q_, k_;  // row-major [n, dh]; keys globally centred
  std::vector<double> c_;      // c_i = q_i . kbar_i  (kbar_i: mean of the centred keys over V_i)
  double frobenius2_ = 0;
};

enum class CausalMethod { Auto, Dense, Lanczos };

struct CausalOptions {
  CausalMethod method = CausalMethod::Auto;
  int dense_max = 1024;  // Auto: dense SVD when n <= dense_max, Lanczos beyond
  int max_values = 512;  // Lanczos: largest Krylov dimension (= most singular values computed)
  // > 0: only the leading `values` singular values are wanted (and returned); Lanczos then stops
  // when their residuals are below 1e-10 sigma_1. 0: Lanczos stops when every k_tau bracket
  // (kTaus, up to 0.99) is a single value (certified), or when every Ritz pair up to k99 has a
  // residual below 1e-10 sigma_1 (converged), or at max_values steps.
  int values = 0;
};

struct CausalSpectrum {
  std::vector<double> sigma;  // descending: all n (dense) or the leading Ritz values (Lanczos)
  std::string method;         // "dense" or "lanczos"
  bool complete = false;      // sigma holds every singular value of E~c
  int krylov_dim = 0;         // Lanczos steps taken (0 for dense)
  double variance = 0;        // ||E~c||_F^2, exact whatever the method
  // Rigorous bound on the variance the computed values miss: variance - sum sigma^2 (0 for dense).
  // Every leading-k captured variance lies in [sum_{i<=k} sigma_i^2, that + unexplained].
  double unexplained = 0;
  // Convergence diagnostic relative to sigma_1: dense, LAPACK's backward-error scale n * eps;
  // Lanczos, the largest Ritz-pair residual ||E~c^T u_i - theta_i v_i|| / sigma_1 over the values
  // up to k99 (or up to `values`): each guarantees a true singular value within that distance of
  // theta_i (not necessarily the i-th one: only the bounds below are index-exact).
  double residual = 0;
  // Per kTaus: the reported k_tau (from the computed values, with the exact total variance; for
  // Lanczos a rigorous upper bound of the true one, -1 when not reached) and a rigorous lower
  // bound (Ky Fan: sum_{i<=k} sigma_i^2 <= sum_{i<=k} sigma~_i^2 + unexplained). Equal: exact.
  std::array<int, kTaus.size()> k_tau{}, k_tau_lower{};
  bool k_tau_exact = true;
  SpectrumSummary summary;  // k_tau as above; erank and participation ratio NaN unless complete
  int numerical_rank = 0;   // #{sigma_i > n * eps_f32 * sigma_1} (a lower bound when not complete)
};

// The singular values of E~c, by the method the options choose (see CausalOptions).
CausalSpectrum causal_field_spectrum(const CausalFieldOperator& op, const CausalOptions& options = {});

// Machine epsilon of float32 (2^-23): the precision of attnspec's activations, used by every
// numerical-rank tolerance n * eps_f32 * sigma_1.
inline constexpr double kRankEps = 1.1920928955078125e-07;
int numerical_rank(const std::vector<double>& sigma, int n);

}  // namespace attnspec
