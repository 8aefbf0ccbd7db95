#include "attnspec/spectra/causal.h"

#include <lapacke.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

// Running mean and scatter matrix M = sum (x - mean)(x - mean)^T of a multiset of d-vectors
// (Welford's update, and its inverse to slide a window).
struct Scatter {
  int d = 0, count = 0;
  std::vector<double> mean, m;
  explicit Scatter(int dim) : d(dim), mean(dim, 0.0), m(size_t(dim) * dim, 0.0) {}
  void reset() {
    count = 0;
    std::fill(mean.begin(), mean.end(), 0.0);
    std::fill(m.begin(), m.end(), 0.0);
  }
  void add(const double* x, std::vector<double>& delta) {
    ++count;
    for (int a = 0; a < d; ++a) {
      delta[a] = x[a] - mean[a];
      mean[a] += delta[a] / count;
    }
    rank1(delta, double(count - 1) / count);
  }
  void remove(const double* x, std::vector<double>& delta) {
    if (count <= 1) {
      reset();
      return;
    }
    const int rest = count - 1;
    for (int a = 0; a < d; ++a) {
      mean[a] += (mean[a] - x[a]) / rest;
      delta[a] = x[a] - mean[a];
    }
    rank1(delta, -double(rest) / count);
    count = rest;
  }
  void rank1(const std::vector<double>& v, double w) {
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) m[size_t(a) * d + b] += w * v[a] * v[b];
  }
  double quadratic(const double* q) const {
    double t = 0;
    for (int a = 0; a < d; ++a) {
      double r = 0;
      for (int b = 0; b < d; ++b) r += m[size_t(a) * d + b] * q[b];
      t += q[a] * r;
    }
    return t;
  }
};

double dot(const double* a, const double* b, int d) {
  double s = 0;
  for (int t = 0; t < d; ++t) s += a[t] * b[t];
  return s;
}

}  // namespace

int numerical_rank(const std::vector<double>& sigma, int n) {
  if (sigma.empty() || !(sigma[0] > 0)) return 0;
  const double tol = n * kRankEps * sigma[0];
  return static_cast<int>(std::count_if(sigma.begin(), sigma.end(), [&](double s) { return s > tol; }));
}

template <typename T>
CausalFieldOperator::CausalFieldOperator(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale,
                                         int window)
    : n_(n), dh_(dh), window_(window > 0 && window < n ? window : 0), s_(scale) {
  q_.resize(size_t(n) * dh);
  k_.resize(size_t(n) * dh);
  c_.assign(n, 0.0);
  std::vector<double> gmean(dh, 0.0);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dh; ++t) {
      q_[size_t(i) * dh + t] = static_cast<double>(q[i * ldq + t]);
      k_[size_t(i) * dh + t] = static_cast<double>(k[i * ldk + t]);
      gmean[t] += k_[size_t(i) * dh + t];
    }
  for (int t = 0; t < dh; ++t) gmean[t] /= std::max(n, 1);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < dh; ++t) k_[size_t(i) * dh + t] -= gmean[t];

  // Row i of E~c has squared norm s^2 q_i^T M_i q_i, M_i the scatter of the keys in V_i; the
  // row's centring constant is s q_i . kbar_i. One pass with a sliding Welford scatter, rebuilt
  // from scratch every `window` rows so that downdating errors cannot accumulate.
  Scatter sc(dh);
  std::vector<double> delta(dh);
  double frob = 0;
  for (int i = 0; i < n; ++i) {
    if (window_ > 0 && i >= window_ && i % window_ == 0) {
      sc.reset();
      for (int j = i - window_ + 1; j <= i; ++j) sc.add(&k_[size_t(j) * dh], delta);
    } else {
      sc.add(&k_[size_t(i) * dh], delta);
      if (window_ > 0 && i >= window_) sc.remove(&k_[size_t(i - window_) * dh], delta);
    }
    const double* qi = &q_[size_t(i) * dh];
    c_[i] = dot(qi, sc.mean.data(), dh);
    frob += std::max(0.0, sc.quadratic(qi));
  }
  frobenius2_ = scale * scale * frob;
}

template CausalFieldOperator::CausalFieldOperator(const float*, long, const float*, long, int, int, double, int);
template CausalFieldOperator::CausalFieldOperator(const double*, long, const double*, long, int, int, double, int);

void CausalFieldOperator::apply(const double* x, double* y) const {
  // S = sum_{j in V_i} k_j x_j, sx = sum_{j in V_i} x_j, slid along i (rebuilt every window).
  std::vector<double> S(dh_, 0.0);
  double sx = 0;
  for (int i = 0; i < n_; ++i) {
    if (window_ > 0 && i >= window_ && i % window_ == 0) {
      std::fill(S.begin(), S.end(), 0.0);
      sx = 0;
      for (int j = i - window_ + 1; j <= i; ++j) {
        const double* kj = &k_[size_t(j) * dh_];
        for (int t = 0; t < dh_; ++t) S[t] += kj[t] * x[j];
        sx += x[j];
      }
    } else {
      const double* ki = &k_[size_t(i) * dh_];
      for (int t = 0; t < dh_; ++t) S[t] += ki[t] * x[i];
      sx += x[i];
      if (window_ > 0 && i >= window_) {
        const int j = i - window_;
        const double* kj = &k_[size_t(j) * dh_];
        for (int t = 0; t < dh_; ++t) S[t] -= kj[t] * x[j];
        sx -= x[j];
      }
    }
    y[i] = s_ * (dot(&q_[size_t(i) * dh_], S.data(), dh_) - c_[i] * sx);
  }
}

void CausalFieldOperator::apply_t(const double* y, double* x) const {
  // Key j is seen by the rows R_j = [j, j + W - 1] (all i >= j without a window):
  // G = sum_{i in R_j} y_i q_i, g = sum_{i in R_j} y_i c_i, slid from the last key down.
  std::vector<double> G(dh_, 0.0);
  double g = 0;
  for (int j = n_ - 1; j >= 0; --j) {
    const int hi = window_ > 0 ? std::min(n_ - 1, j + window_ - 1) : n_ - 1;
    if (window_ > 0 && (n_ - 1 - j) % window_ == 0 && j + window_ <= n_ - 1) {
      std::fill(G.begin(), G.end(), 0.0);
      g = 0;
      for (int i = j; i <= hi; ++i) {
        const double* qi = &q_[size_t(i) * dh_];
        for (int t = 0; t < dh_; ++t) G[t] += qi[t] * y[i];
        g += c_[i] * y[i];
      }
    } else {
      const double* qj = &q_[size_t(j) * dh_];
      for (int t = 0; t < dh_; ++t) G[t] += qj[t] * y[j];
      g += c_[j] * y[j];
      if (window_ > 0 && j + window_ <= n_ - 1) {
        const int i = j + window_;
        const double* qi = &q_[size_t(i) * dh_];
        for (int t = 0; t < dh_; ++t) G[t] -= qi[t] * y[i];
        g -= c_[i] * y[i];
      }
    }
    x[j] = s_ * (dot(&k_[size_t(j) * dh_], G.data(), dh_) - g);
  }
}

std::vector<double> CausalFieldOperator::materialise() const {
  // E = Q K^T (column-major n x n) by one dgemm, then each row masked and centred over V_i with
  // the mean of its own entries.
  std::vector<double> a(size_t(n_) * n_, 0.0);
  if (n_ == 0) return a;
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, n_, n_, dh_, 1.0, q_.data(), dh_, k_.data(), dh_, 0.0, a.data(),
              n_);
  for (int i = 0; i < n_; ++i) {
    const int lo = first_key(i);
    double mean = 0;
    for (int j = lo; j <= i; ++j) mean += a[size_t(j) * n_ + i];
    mean /= (i - lo + 1);
    for (int j = 0; j < n_; ++j) {
      double& e = a[size_t(j) * n_ + i];
      e = (j >= lo && j <= i) ? s_ * (e - mean) : 0.0;
    }
  }
  return a;
}

namespace {

// Orthogonalises w against the m columns of `basis` (n x m, column-major): classical Gram-Schmidt
// applied twice ("twice is enough"), which keeps the Lanczos bases orthonormal to working precision.
void orthogonalise(double* w, const double* basis, int n, int m, std::vector<double>& h) {
  if (m == 0) return;
  h.resize(m);
  for (int pass = 0; pass < 2; ++pass) {
    cblas_dgemv(CblasColMajor, CblasTrans, n, m, 1.0, basis, n, w, 1, 0.0, h.data(), 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, n, m, -1.0, basis, n, h.data(), 1, 1.0, w, 1);
  }
}

// A random unit vector orthogonal to the m columns of `basis` (m < n).
void random_orthogonal(double* w, const double* basis, int n, int m, std::mt19937_64& rng, std::vector<double>& h) {
  std::normal_distribution<double> normal;
  for (int attempt = 0; attempt < 8; ++attempt) {
    for (int i = 0; i < n; ++i) w[i] = normal(rng);
    orthogonalise(w, basis, n, m, h);
    const double nrm = cblas_dnrm2(n, w, 1);
    if (nrm > 1e-8) {
      cblas_dscal(n, 1.0 / nrm, w, 1);
      return;
    }
  }
  throw std::runtime_error("Lanczos: cannot extend an orthonormal basis");
}

// k_tau brackets from rigorous lower bounds `sigma` of the leading singular values (Ritz values
// of a compression U^T A) and the rigorous bound `unexplained` >= ||(I - U U^T) A||_F^2. By Ky Fan,
//   sum_{i<=k} sigma~_i^2  <=  sum_{i<=k} sigma_i^2  <=  sum_{i<=k} sigma~_i^2 + unexplained,
// so the true k_tau lies in [k_lo, k_hi]: k_hi from the lower sums, k_lo from the upper ones.
void bracket_k_tau(const std::vector<double>& sigma, double total, double unexplained, CausalSpectrum& out) {
  const int m = static_cast<int>(sigma.size());
  out.k_tau_exact = true;
  for (size_t t = 0; t < kTaus.size(); ++t) {
    const double target = kTaus[t] * total;
    double lower = 0;
    int k_hi = -1, k_lo = -1;
    for (int i = 0; i < m; ++i) {
      lower += sigma[i] * sigma[i];
      if (k_lo < 0 && lower + unexplained >= target) k_lo = i + 1;
      if (k_hi < 0 && lower >= target) k_hi = i + 1;
    }
    out.k_tau[t] = k_hi;  // -1: not reached by the computed values
    out.k_tau_lower[t] = k_lo < 0 ? m + 1 : k_lo;
    if (k_hi < 0 || k_lo != k_hi) out.k_tau_exact = false;
  }
}

CausalSpectrum dense_spectrum(const CausalFieldOperator& op, const CausalOptions& o) {
  CausalSpectrum out;
  out.method = "dense";
  const int n = op.n();
  const std::vector<double> a = op.materialise();
  out.sigma = dense_singular_values(a.data(), n, n);
  out.complete = true;
  out.variance = op.frobenius2();
  out.summary = summarize(out.sigma);
  out.k_tau = out.summary.k_tau;
  out.k_tau_lower = out.summary.k_tau;
  out.k_tau_exact = true;
  out.residual = out.sigma.empty() ? 0.0 : n * std::numeric_limits<double>::epsilon();
  out.numerical_rank = numerical_rank(out.sigma, n);
  if (o.values > 0 && int(out.sigma.size()) > o.values) out.sigma.resize(o.values);
  return out;
}

// Lanczos convergence threshold on the Ritz residuals, relative to sigma_1.
constexpr double kConverged = 1e-10;

CausalSpectrum lanczos_spectrum(const CausalFieldOperator& op, const CausalOptions& o) {
  CausalSpectrum out;
  out.method = "lanczos";
  const int n = op.n();
  const double total = op.frobenius2();
  out.variance = total;
  if (n == 0 || !(total > 0)) {
    out.sigma.assign(std::min(n, std::max(o.values, 1)), 0.0);
    out.complete = n <= 1;
    out.summary = summarize(out.sigma);
    out.k_tau = out.k_tau_lower = out.summary.k_tau;
    return out;
  }
  const int mmax = std::min(n, std::max({o.max_values, o.values > 0 ? 3 * o.values : 0, 2}));
  const double tiny = 1e-13 * std::sqrt(total);  // sqrt(total) >= sigma_1
  // Bases with one column to spare: after m steps the check uses alpha_{m+1} and u_{m+1}.
  std::vector<double> U(size_t(n) * (mmax + 1)), V(size_t(n) * (mmax + 1)), alpha, beta, h;
  std::mt19937_64 rng(0x5eed);  // fixed: results do not depend on threads or runs

  // Finishes a half-step: w orthogonalised against `basis` (m columns) and normalised;
  // a (near) zero norm means an invariant subspace: continue the basis with a fresh direction.
  auto extend = [&](double* w, const double* basis, int m) {
    orthogonalise(w, basis, n, m, h);
    const double nrm = cblas_dnrm2(n, w, 1);
    if (nrm <= tiny) {
      random_orthogonal(w, basis, n, m, rng, h);
      return 0.0;
    }
    cblas_dscal(n, 1.0 / nrm, w, 1);
    return nrm;
  };

  // Golub-Kahan-Lanczos from a random v_1, with full reorthogonalisation:
  //   A V_m = U_m B_m,   A^T U_m = V_m B_m^T + beta_m v_{m+1} e_m^T,   B_m upper bidiagonal
  //   (alpha on the diagonal, beta above), and A v_{m+1} = beta_m u_m + alpha_{m+1} u_{m+1}.
  random_orthogonal(V.data(), V.data(), n, 0, rng, h);
  op.apply(V.data(), U.data());
  alpha.push_back(extend(U.data(), U.data(), 0));

  std::vector<double> sig, res;
  int next_check = std::min(mmax, 16);
  for (int m = 1;; ++m) {
    // beta_m, v_{m+1}, then alpha_{m+1}, u_{m+1} (all zero once the space is full, m == n).
    double bm = 0, am1 = 0;
    if (m < n) {
      double* v_next = &V[size_t(m) * n];
      op.apply_t(&U[size_t(m - 1) * n], v_next);
      cblas_daxpy(n, -alpha[m - 1], &V[size_t(m - 1) * n], 1, v_next, 1);
      bm = extend(v_next, V.data(), m);
      double* u_next = &U[size_t(m) * n];
      op.apply(v_next, u_next);
      cblas_daxpy(n, -bm, &U[size_t(m - 1) * n], 1, u_next, 1);
      am1 = extend(u_next, U.data(), m);
    }
    beta.push_back(bm);
    alpha.push_back(am1);

    const bool last = m == mmax || m == n;
    if (m != next_check && !last) continue;
    // The compression U_m^T A = [B_m, beta_m e_m] [V_m, v_{m+1}]^T: its singular values (those of
    // the (m+1)-square bidiagonal with diagonal alpha_1..alpha_m, 0 and superdiagonal
    // beta_1..beta_m) are the reported values, rigorous lower bounds sigma~_i <= sigma_i, and
    // unexplained = total - ||U_m^T A||_F^2 >= ||(I - U_m U_m^T) A||_F^2. With its singular
    // triplets (u~_i, sigma~_i, y_i): E~c^T u~_i = sigma~_i v~_i exactly and
    // E~c v~_i - sigma~_i u~_i = alpha_{m+1} y_{i,m+1} u_{m+1}, so the residuals come from the last
    // components of the right singular vectors (dbdsqr with VT = e_{m+1}).
    std::vector<double> d(alpha.begin(), alpha.begin() + m), e(beta.begin(), beta.begin() + m),
        lastcomp(size_t(m) + 1, 0.0);
    d.push_back(0.0);
    lastcomp[m] = 1.0;
    double dummy = 0;
    const int info = LAPACKE_dbdsqr(LAPACK_COL_MAJOR, 'U', m + 1, 1, 0, 0, d.data(), e.data(), lastcomp.data(), m + 1,
                                    &dummy, 1, &dummy, 1);
    if (info != 0) throw std::runtime_error("dbdsqr failed with info " + std::to_string(info));
    sig.assign(d.begin(), d.begin() + m);
    res.resize(m);
    for (int i = 0; i < m; ++i) res[i] = std::abs(am1 * lastcomp[i]);
    double captured = 0;
    for (double x : sig) captured += x * x;
    const double unexplained = std::max(0.0, total - captured);
    bracket_k_tau(sig, total, unexplained, out);
    out.unexplained = unexplained;
    bool done = last;
    if (o.values > 0) {
      double worst = 0;
      for (int i = 0; i < std::min(o.values, m); ++i) worst = std::max(worst, res[i]);
      done = done || (m >= o.values && worst <= kConverged * sig[0]);
    } else {
      // Certified (rigorous brackets closed), or converged: every Ritz pair up to k99 has a
      // residual below kConverged * sigma_1 (the standard Lanczos test; values missed entirely
      // would need a multiple singular value, which a random start does not meet generically).
      bool converged = out.k_tau.back() > 0;
      for (int i = 0; converged && i < out.k_tau.back(); ++i) converged = res[i] <= kConverged * sig[0];
      done = done || out.k_tau_exact || converged || unexplained <= 1e-15 * total;
    }
    if (done) {
      out.krylov_dim = m;
      break;
    }
    next_check = std::min(mmax, std::max(m + 8, int(std::ceil(m * 1.2))));
  }

  const int m = out.krylov_dim;
  out.complete = m == n;
  out.sigma = sig;
  // Residual of the values that matter: up to k99 (or `values`), relative to sigma_1.
  const int upto = o.values > 0 ? std::min(o.values, m) : (out.k_tau.back() > 0 ? out.k_tau.back() : m);
  for (int i = 0; i < upto; ++i) out.residual = std::max(out.residual, res[i]);
  out.residual = sig.empty() || !(sig[0] > 0) ? 0.0 : out.residual / sig[0];
  out.numerical_rank = numerical_rank(sig, n);
  SpectrumSummary& s = out.summary;
  if (out.complete) {
    s = summarize(sig);
    out.k_tau = s.k_tau;
    out.k_tau_lower = s.k_tau;
    out.k_tau_exact = true;
  } else {
    s.k_tau = out.k_tau;
    s.effective_rank = std::nan("");
    s.participation_ratio = std::nan("");
    s.stable_rank = sig[0] > 0 ? total / (sig[0] * sig[0]) : 0.0;
    s.variance = total;
  }
  if (o.values > 0 && int(out.sigma.size()) > o.values) out.sigma.resize(o.values);
  return out;
}

}  // namespace

CausalSpectrum causal_field_spectrum(const CausalFieldOperator& op, const CausalOptions& o) {
  const bool dense = o.method == CausalMethod::Dense || (o.method == CausalMethod::Auto && op.n() <= o.dense_max);
  return dense ? dense_spectrum(op, o) : lanczos_spectrum(op, o);
}

}  // namespace attnspec
