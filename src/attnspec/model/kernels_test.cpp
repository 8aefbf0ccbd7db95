// Each kernel of kernels.h against a naive float64 reference written here from the definition, on
// odd shapes and on shapes that cross the kernels' tile and block edges, in the spirit of
// llama.cpp's test-backend-ops. The tolerances are bounds on float32 rounding, not fitted numbers:
// u = 2^-24 is float32's unit roundoff (each operation's relative error), and a sum of k products
// computed in float32, in any order or blocking, is within gamma_k(k) = k u / (1 - k u) of the exact
// sum times the sum of the products' magnitudes (Higham, Accuracy and Stability of Numerical
// Algorithms, 2nd ed., 3.1). Library exp, tanh and erf are allowed 4 ulps (8 u) each.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "attnspec/model/forward.h"
#include "attnspec/model/kernels.h"

namespace attnspec {
namespace {

constexpr double u = 0x1p-24;
constexpr double kLibm = 8 * u;  // exp, tanh, erf: 4 ulps
double gamma_k(double k) { return k * u / (1 - k * u); }
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_floats(size_t count, unsigned seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(count);
  for (float& x : out) x = dist(rng);
  return out;
}

// The largest |got - want| / tol over a kernel's outputs and where it was, so that a failure is one
// line. A NaN, or any difference where the tolerance is 0, counts as infinitely far.
class Worst {
 public:
  void add(double got, double want, double tol, int64_t i, int64_t j) {
    const double err = std::abs(got - want);
    const double r = err == 0 ? 0 : std::isnan(err) ? INFINITY : err / tol;
    if (r > ratio_ || (std::isinf(r) && !std::isinf(ratio_))) {
      ratio_ = r;
      std::ostringstream at;
      at << std::setprecision(9) << "[" << i << ", " << j << "]: got " << got << ", want " << want << ", tolerance "
         << tol;
      where_ = at.str();
    }
    ++count_;
  }
  // Every output within its tolerance.
  void expect_within(const std::string& what) const {
    EXPECT_GT(count_, 0) << what;
    EXPECT_LE(ratio_, 1.0) << what << " at " << where_;
  }

 private:
  double ratio_ = 0;
  std::string where_;
  int64_t count_ = 0;
};

// x [n, in] in rows ldx = in + 3 apart, the padding NaN: a kernel that read it would spread NaN.
std::vector<float> padded_input(int n, int64_t in, unsigned seed) {
  std::vector<float> x = random_floats(size_t(n) * (in + 3), seed);
  for (int i = 0; i < n; ++i) std::fill_n(x.begin() + i * (in + 3) + in, 3, kNaN);
  return x;
}

// ---- Matrix products ---------------------------------------------------------------------------

constexpr float kSentinel = 777.0f;  // in output padding that no kernel may write

// A projection under test: its stored weight [stored_rows, ldw] and bias (random), the spec that
// reads W out of them, and an output y [n, out] in rows ldy = out + 2 apart. Without a bias, y
// starts as NaN: the product must overwrite it (beta = 0), not add to it.
struct Projection {
  LinearSpec spec;
  int64_t ldw;
  std::vector<float> weight, bias, y;
  int64_t ldy;

  Projection(const LinearSpec& s, int64_t stored_rows, int64_t stored_cols, bool with_bias, int n, unsigned seed)
      : spec(s), ldw(stored_cols), weight(random_floats(size_t(stored_rows * stored_cols), seed)), ldy(s.out + 2) {
    if (with_bias) bias = random_floats(size_t(s.in_out_layout ? stored_cols : stored_rows), seed + 1);
    y.assign(size_t(n) * ldy, with_bias ? 0.0f : kNaN);
    for (int i = 0; i < n; ++i) std::fill_n(y.begin() + i * ldy + s.out, 2, kSentinel);
  }
  LinearJob job() { return {spec, weight.data(), ldw, bias.empty() ? nullptr : bias.data(), y.data(), ldy}; }

  // W(o, c) and b(o) as LinearSpec defines them.
  double w(int64_t o, int64_t c) const {
    return spec.in_out_layout ? weight[c * ldw + spec.col_offset + o] : weight[spec.stored_row(o) * ldw + c];
  }
  double b(int64_t o) const {
    return bias.empty() ? 0.0 : bias[spec.in_out_layout ? spec.col_offset + o : spec.stored_row(o)];
  }
  // y = x W^T + b: the sum of `in` products and the bias, each rounded once more at most.
  void check(const std::vector<float>& x, int n, int64_t ldx, const std::string& what) const {
    Worst worst;
    for (int i = 0; i < n; ++i) {
      for (int64_t o = 0; o < spec.out; ++o) {
        double want = b(o), magnitude = std::abs(b(o));
        for (int64_t c = 0; c < spec.in; ++c) {
          want += x[i * ldx + c] * w(o, c);
          magnitude += std::abs(x[i * ldx + c] * w(o, c));
        }
        worst.add(y[i * ldy + o], want, gamma_k(double(spec.in) + 2) * magnitude, i, o);
      }
      for (int p = 0; p < 2; ++p) worst.add(y[i * ldy + spec.out + p], kSentinel, 0, i, spec.out + p);
    }
    worst.expect_within(what);
  }
};

LinearSpec out_in(int64_t out, int64_t in) { return LinearSpec{.out = out, .in = in}; }

// One product on its own, x [n, in] read through padded rows.
void check_product(const LinearSpec& s, int64_t stored_rows, int64_t stored_cols, bool with_bias, int n,
                   const std::string& what) {
  Projection p(s, stored_rows, stored_cols, with_bias, n, 11);
  const std::vector<float> x = padded_input(n, s.in, 12);
  linear(p.job(), x.data(), n, s.in + 3);
  p.check(x, n, s.in + 3, what);
}

TEST(Kernels, LinearOutInRows) {
  check_product(out_in(5, 13), 5, 13, true, 7, "[out, in], bias");
  check_product(out_in(5, 13), 5, 13, false, 7, "[out, in], no bias");
  // Phi-3's fused qkv_proj: K is rows 5..9 of [15, 13].
  LinearSpec k = out_in(5, 13);
  k.row_offset = 5;
  check_product(k, 15, 13, true, 7, "fused [out_total, in] at a row offset");
}

TEST(Kernels, LinearConv1DColumns) {
  // GPT-2's c_attn [in, 3 out]: K is the column block 5..9 of [13, 15].
  LinearSpec k = out_in(5, 13);
  k.in_out_layout = true;
  k.col_offset = 5;
  check_product(k, 13, 15, true, 7, "[in, out_total] column block");
  check_product(k, 13, 15, false, 7, "[in, out_total] column block, no bias");
}

TEST(Kernels, LinearHeadInterleavedRows) {
  // GPT-NeoX's query_key_value: per head [q; k; v] of d_h = 5 rows; K of 3 heads is rows
  // 5..9, 20..24, 35..39 of [45, 13].
  LinearSpec k = out_in(15, 13);
  k.row_offset = 5;
  k.head_rows = 5;
  k.head_stride = 15;
  check_product(k, 45, 13, true, 7, "head-interleaved rows");
  check_product(k, 45, 13, true, 600, "head-interleaved rows, 600 tokens (row tiles of 512)");
}

TEST(Kernels, LinearTileEdges) {
  // Row tiles: 600 = 512 + 88; 130 tokens halve the rows to 128 (128 + 2); column tiles:
  // 4097 outputs are two tiles of 2049 and 2048.
  check_product(out_in(7, 11), 7, 11, true, 600, "600 tokens");
  check_product(out_in(7, 11), 7, 11, true, 130, "130 tokens");
  check_product(out_in(4097, 3), 4097, 3, true, 9, "4097 outputs");
  LinearSpec wide = out_in(4097, 3);
  wide.in_out_layout = true;
  wide.col_offset = 2;
  check_product(wide, 3, 4101, false, 9, "4097 [in, out_total] columns");
}

TEST(Kernels, LinearsShareOnePool) {
  // Q, K and V from one x: GPT-2's column blocks and a head-interleaved block in one call.
  const int n = 7, in = 13;
  LinearSpec q = out_in(5, in), k = q, v = out_in(6, in);
  q.in_out_layout = k.in_out_layout = true;
  k.col_offset = 5;
  v.row_offset = 2, v.head_rows = 3, v.head_stride = 5;
  Projection pq(q, in, 15, true, n, 1), pk(k, in, 15, false, n, 2), pv(v, 10, in, true, n, 3);
  const std::vector<float> x = padded_input(n, in, 4);
  linears({pq.job(), pk.job(), pv.job()}, x.data(), n, in + 3);
  pq.check(x, n, in + 3, "q");
  pk.check(x, n, in + 3, "k");
  pv.check(x, n, in + 3, "v");
}

// ---- Norms -------------------------------------------------------------------------------------

// norm_rows on x [rows, dim] (rows ld apart, mean 0.5 off zero so that LayerNorm's centring
// matters) against (x - mean) / sqrt(var + eps) * w' + b in float64, w' = w, 1 + w or 1 and
// mean = 0 for RMSNorm. The kernel rounds the mean to float32 (u |mean|), then subtracts,
// multiplies by 1 / sqrt (itself rounded once), by w' (rounded once) and adds b: a handful of
// roundings of |x - mean| and |mean|, bounded with room by 8 u.
void check_norm(const NormSpec& s, bool with_w, bool with_b, int rows, int dim, int64_t ld, bool in_place,
                const std::string& what) {
  const std::vector<float> x = random_floats(size_t(rows) * ld, 21, -0.5f, 1.5f);
  const std::vector<float> w = random_floats(dim, 22), b = random_floats(dim, 23);
  std::vector<float> y = in_place ? x : std::vector<float>(x.size(), kSentinel);
  norm_rows(s, with_w ? w.data() : nullptr, with_b ? b.data() : nullptr, in_place ? y.data() : x.data(), y.data(),
            rows, dim, ld);
  Worst worst;
  for (int i = 0; i < rows; ++i) {
    const float* xi = x.data() + int64_t(i) * ld;
    double mean = 0, var = 0;
    if (s.kind == NormKind::LayerNorm) {
      for (int j = 0; j < dim; ++j) mean += xi[j];
      mean /= dim;
    }
    for (int j = 0; j < dim; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    const double inv = 1 / std::sqrt(var / dim + s.eps);
    for (int j = 0; j < dim; ++j) {
      const double wj = !with_w ? 1.0 : s.plus_one ? 1.0 + w[j] : w[j], bj = with_b ? b[j] : 0.0;
      const double want = (xi[j] - mean) * inv * wj + bj;
      const double tol = 8 * u * ((std::abs(xi[j] - mean) + std::abs(mean)) * inv * std::abs(wj) + std::abs(bj));
      worst.add(y[int64_t(i) * ld + j], want, tol, i, j);
    }
    for (int64_t j = dim; j < ld; ++j) worst.add(y[int64_t(i) * ld + j], in_place ? xi[j] : kSentinel, 0, i, j);
  }
  worst.expect_within(what);
}

TEST(Kernels, LayerNorm) {
  const NormSpec ln{NormKind::LayerNorm, 1e-5, false};
  check_norm(ln, true, true, 7, 13, 13, false, "LayerNorm, weight and bias");
  check_norm(ln, false, false, 7, 13, 16, false, "LayerNorm without affine (OPT), rows 16 apart");
  check_norm({NormKind::LayerNorm, 0.5, false}, true, true, 7, 13, 13, true, "LayerNorm, eps 0.5, in place");
  check_norm(ln, true, true, 300, 257, 257, false, "LayerNorm, 300 x 257 (threaded)");
}

TEST(Kernels, RMSNorm) {
  const NormSpec rms{NormKind::RMSNorm, 1e-6, false};
  check_norm(rms, true, false, 7, 13, 13, false, "RMSNorm");
  check_norm(rms, true, false, 7 * 3, 5, 5, true, "RMSNorm per head (q_norm), d_h 5, in place");
  check_norm({NormKind::RMSNorm, 0.5, false}, true, false, 7, 13, 15, false, "RMSNorm, eps 0.5, rows 15 apart");
  check_norm({NormKind::RMSNorm, 1e-6, true}, true, false, 7, 13, 13, false, "RMSNorm (1 + w) (Gemma)");
  check_norm({NormKind::RMSNorm, 1e-6, true}, true, false, 300, 257, 257, true, "RMSNorm (1 + w), 300 x 257");
}

// ---- Rotary embedding --------------------------------------------------------------------------

// rope on t [n, heads d_h] against the rotation of each pair (j, j + r/2) by i * inv_freq[j] in
// float64. The kernel forms the angle in float32 (as transformers does), which moves cos and sin
// by up to u |angle|; cos, sin, the scaling, both products and the sum round once each: within
// (|t_j| + |t_(j + r/2)|) |scaling| (u |angle| + 6 u). Dims from r on must come back unchanged.
void check_rope(int n, int heads, int dh, int r, float scaling, const std::string& what) {
  std::vector<float> inv_freq(r / 2);
  for (int j = 0; j < r / 2; ++j) inv_freq[j] = static_cast<float>(std::pow(10000.0, -2.0 * j / r));
  const std::vector<float> t0 = random_floats(size_t(n) * heads * dh, 31);
  std::vector<float> t = t0;
  rope(RopeSpec{inv_freq.data(), r, dh, scaling}, t.data(), n, heads);
  Worst worst;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h) {
      const int64_t at = (int64_t(i) * heads + h) * dh;
      for (int j = 0; j < r / 2; ++j) {
        const double angle = i * double(inv_freq[j]), c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
        const double x1 = t0[at + j], x2 = t0[at + j + r / 2];
        const double tol = (std::abs(x1) + std::abs(x2)) * std::abs(scaling) * (u * angle + 6 * u);
        worst.add(t[at + j], x1 * c - x2 * s, tol, i, h * dh + j);
        worst.add(t[at + j + r / 2], x2 * c + x1 * s, tol, i, h * dh + j + r / 2);
      }
      for (int j = r; j < dh; ++j) worst.add(t[at + j], t0[at + j], 0, i, h * dh + j);
    }
  worst.expect_within(what);
}

TEST(Kernels, Rope) {
  check_rope(7, 3, 5, 4, 1.0f, "d_h 5, rotary 4");
  check_rope(7, 2, 6, 2, 1.0f, "d_h 6, rotary 2 (partial, as Phi-3 and GPT-NeoX)");
  check_rope(7, 3, 8, 8, 0.75f, "d_h 8, full rotary, attention scaling 0.75");
  check_rope(700, 20, 5, 4, 1.0f, "700 tokens x 20 heads (threaded, angles up to 699)");
}

// ---- Attention ---------------------------------------------------------------------------------

// attention on random q [n, H d_h], k and v [n, G d_h] (q times q_gain to sharpen the softmax; k
// drifting by `drift` per token so that later key blocks can hold a row's larger logits and the
// online softmax must rescale) against, per query i and head h with g = h / (H / G):
//   out = sum_j p_j v_j,  p = softmax over the visible j of z_j = cap(s q_i.k_j),  in float64.
// Bound: a logit's error is at most D = gamma_k(d_h + 1) s sum |q k| (plus u |z| + 3 u |C| through
// tanh with a cap); each weight exp(z_j - max) then has relative error at most
// rho = 2 D + (blocks + 1)(2 u R + 8 u + 2 u), R the range of the visible logits (the subtraction
// rounds, exp and every rescale by exp(max - max') add theirs); the numerator's and the
// denominator's sums of k terms add gamma_k(k + blocks + 2) each. So |out_e - want_e| <=
// (2 rho + 2 gamma_k(k + blocks + 2)) sum_j p_j |v_je|, taken twice for room.
void check_attention(const AttentionSpec& s, int n, float q_gain, float drift, const std::string& what) {
  const int H = s.n_heads, G = s.n_kv_heads, dh = s.head_dim;
  std::vector<float> q = random_floats(size_t(n) * H * dh, 41), k = random_floats(size_t(n) * G * dh, 42),
                     v = random_floats(size_t(n) * G * dh, 43);
  for (float& x : q) x *= q_gain;
  for (int j = 0; j < n; ++j)
    for (int e = 0; e < G * dh; ++e) k[int64_t(j) * G * dh + e] += drift * j;
  std::vector<float> out(size_t(n) * H * dh, kNaN);
  attention(s, q.data(), k.data(), v.data(), out.data(), n);

  const int blocks = (n + 255) / 256 + 1;
  Worst worst;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / G);
      const float* qi = q.data() + (int64_t(i) * H + h) * dh;
      std::vector<int> keys;
      for (int j = 0; j < n; ++j)
        if (!s.causal || (j <= i && (s.window == 0 || i - j < s.window))) keys.push_back(j);
      std::vector<double> z(keys.size());
      double D = 0, zmax = -INFINITY, zmin = INFINITY;
      for (size_t a = 0; a < keys.size(); ++a) {
        const float* kj = k.data() + (int64_t(keys[a]) * G + g) * dh;
        double dot = 0, magnitude = 0;
        for (int e = 0; e < dh; ++e) dot += double(qi[e]) * kj[e], magnitude += std::abs(double(qi[e]) * kj[e]);
        z[a] = s.scale * dot;
        double err = gamma_k(dh + 1) * s.scale * magnitude;
        if (s.softcap > 0) {
          err += u * std::abs(z[a]);
          z[a] = s.softcap * std::tanh(z[a] / s.softcap);
          err += 3 * u * std::abs(z[a]);
        }
        D = std::max(D, err), zmax = std::max(zmax, z[a]), zmin = std::min(zmin, z[a]);
      }
      double sum = 0;
      for (double& x : z) sum += x = std::exp(x - zmax);
      const double rho = 2 * D + (blocks + 1) * (2 * u * (zmax - zmin) + kLibm + 2 * u);
      const double rel = 2 * (2 * rho + 2 * gamma_k(double(keys.size()) + blocks + 2));
      for (int e = 0; e < dh; ++e) {
        double want = 0, magnitude = 0;
        for (size_t a = 0; a < keys.size(); ++a) {
          const double p = z[a] / sum, ve = v[(int64_t(keys[a]) * G + g) * dh + e];
          want += p * ve, magnitude += p * std::abs(ve);
        }
        worst.add(out[(int64_t(i) * H + h) * dh + e], want, rel * magnitude, i, h * dh + e);
      }
    }
  worst.expect_within(what);
}

AttentionSpec gqa(int H, int G, int dh) { return AttentionSpec{H, G, dh, float(1 / std::sqrt(dh)), 0, true, 0}; }

TEST(Kernels, AttentionCausalAndGrouped) {
  check_attention(gqa(6, 2, 5), 7, 1, 0, "7 tokens, H 6, G 2 (3 query heads per KV head), d_h 5");
  check_attention(gqa(4, 4, 5), 7, 1, 0, "H = G = 4");
  check_attention(gqa(6, 1, 5), 7, 3, 0, "one KV head for 6 query heads, sharp softmax");
  check_attention(gqa(4, 2, 5), 300, 3, 0, "300 tokens: query blocks 4 x 64 + 44, key blocks 256 + 44");
  check_attention(gqa(4, 2, 5), 300, 3, 0.01f, "300 tokens, keys drifting (online rescale)");
}

TEST(Kernels, AttentionSlidingWindow) {
  AttentionSpec s = gqa(6, 3, 5);
  for (int window : {1, 3, 1000}) {
    s.window = window;
    check_attention(s, 7, 2, 0, "7 tokens, window " + std::to_string(window));
  }
  for (int window : {70, 100, 257}) {  // windows that start keys inside blocks and cross their edges
    s.window = window;
    check_attention(s, 300, 2, 0.01f, "300 tokens, window " + std::to_string(window));
  }
}

TEST(Kernels, AttentionSoftCap) {
  AttentionSpec s = gqa(6, 2, 5);
  s.softcap = 1.5f;  // with q_gain 4 the logits reach several times the cap: tanh bends them
  check_attention(s, 7, 4, 0, "soft-cap 1.5");
  s.window = 70;
  check_attention(s, 300, 4, 0.01f, "soft-cap 1.5, window 70, 300 tokens");
}

TEST(Kernels, AttentionBidirectional) {
  AttentionSpec s = gqa(4, 2, 5);
  s.causal = false;
  s.window = 3;  // ignored: an encoder sees every key
  check_attention(s, 7, 2, 0, "encoder, 7 tokens");
  check_attention(s, 300, 2, 0.01f, "encoder, 300 tokens");
}

// ---- Elementwise -------------------------------------------------------------------------------

// gelu_new(x) = 0.5 x (1 + tanh(k)), k = sqrt(2/pi) (x + 0.044715 x^3), written as x sigmoid(2k)
// (the same function): 1 + tanh(k) cancels to 0 in float64 too for x below about -8.
double gelu_tanh(double x) {
  return x / (1 + std::exp(-2 * std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

// activate against the definitions in float64 on `count` values in [-9, 9] after a few special
// ones (zeros, a tiny value, far tails where exp overflows or underflows). Bounds, with T the
// exponent 2 sqrt(2/pi) (|x| + 0.044715 |x|^3) of gelu_new as x sigmoid(2u): T is formed with about
// 7 roundings (constants included), exp adds 8 u, the sum, the quotient and the gate's product 3 u,
// so |y| (10 u T + 16 u); SwiGLU's exponent is exact: |y| 16 u. Both add |x b| 2^-126: beyond
// x = -88.7 (SwiGLU) or about -9.3 (gelu_new) exp overflows float32 and y is 0 where the true
// value is below |x b| e^-88.7. GELU's erf argument rounds twice and erf, 1 + erf and two
// products round once each: 4 u (|y| + |x|). ReLU is exact.
void check_activation(MlpKind kind, int64_t count, const std::string& what) {
  std::vector<float> a = random_floats(count, 51, -9, 9);
  const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 20.0f, -20.0f, 40.0f, -40.0f, 88.0f, -88.0f};
  std::copy(std::begin(specials), std::end(specials), a.begin());
  const bool gated = kind == MlpKind::SwiGLU || kind == MlpKind::GeGLU;
  const std::vector<float> x = a, b = random_floats(count, 52, -2, 2);
  activate(kind, a.data(), gated ? b.data() : nullptr, count);
  Worst worst;
  for (int64_t i = 0; i < count; ++i) {
    const double xi = x[i], bi = gated ? b[i] : 1.0;
    const double T = 2 * std::sqrt(2 / std::numbers::pi) * (std::abs(xi) + 0.044715 * std::abs(xi * xi * xi));
    double want = 0, tol = 0;
    const double overflow = std::abs(xi * bi) * std::numeric_limits<float>::min();
    switch (kind) {
      case MlpKind::GeluTanh:
      case MlpKind::GeGLU:
        want = gelu_tanh(xi) * bi, tol = std::abs(want) * (10 * u * T + 16 * u) + overflow;
        break;
      case MlpKind::SwiGLU:
        want = xi / (1 + std::exp(-xi)) * bi, tol = std::abs(want) * 16 * u + overflow;
        break;
      case MlpKind::GeluExact:
        // 0.5 x (1 + erf(x / sqrt 2)), as 0.5 x erfc(-x / sqrt 2) against the same cancellation
        want = 0.5 * xi * std::erfc(-xi / std::numbers::sqrt2), tol = 4 * u * (std::abs(want) + std::abs(xi));
        break;
      case MlpKind::Relu:
        want = std::max(xi, 0.0);
        break;
    }
    worst.add(a[i], want, tol, i, 0);
  }
  worst.expect_within(what);
}

TEST(Kernels, Activations) {
  const std::pair<MlpKind, const char*> kinds[] = {{MlpKind::GeluTanh, "gelu_new"}, {MlpKind::GeluExact, "gelu"},
                                                   {MlpKind::Relu, "relu"}, {MlpKind::SwiGLU, "SwiGLU"},
                                                   {MlpKind::GeGLU, "GeGLU"}};
  for (const auto& [kind, name] : kinds) {
    check_activation(kind, 2 * 2048 + 13, std::string(name) + ", 4109 values (chunk and lane tails)");
    check_activation(kind, 70001, std::string(name) + ", 70001 values (threaded)");
  }
}

TEST(Kernels, ResidualSums) {
  for (int64_t count : {13, 70001}) {
    const std::vector<float> h0 = random_floats(count, 61, -4, 4), y = random_floats(count, 62),
                             z = random_floats(count, 63);
    std::vector<float> h = h0;
    add_into(h.data(), y.data(), count);
    Worst sum2;  // one rounding of an exact float64 sum: the correctly rounded float32 sum
    for (int64_t i = 0; i < count; ++i) sum2.add(h[i], float(double(h0[i]) + y[i]), 0, i, 0);
    sum2.expect_within("add_into, " + std::to_string(count));
    h = h0;
    add_parallel_residual(h.data(), y.data(), z.data(), count);
    Worst sum3;  // two roundings
    for (int64_t i = 0; i < count; ++i)
      sum3.add(h[i], double(z[i]) + y[i] + h0[i], 2 * u * (std::abs(z[i]) + std::abs(y[i]) + std::abs(h0[i])), i, 0);
    sum3.expect_within("add_parallel_residual, " + std::to_string(count));
  }
  // The order is transformers' (mlp + attn) + h: 1e8 + 1 rounds to 1e8 in float32, so z + (y + h)
  // or (h + y) + z would give 0 here, and (z + y) + h gives 1.
  float h = 1.0f;
  const float y = -1e8f, z = 1e8f;
  add_parallel_residual(&h, &y, &z, 1);
  EXPECT_EQ(h, 1.0f);
}

TEST(Kernels, SoftCap) {
  const double cap = 30;
  for (int64_t count : {13, 70001}) {
    const std::vector<float> a0 = random_floats(count, 65, -300, 300);
    std::vector<float> a = a0;
    soft_cap(float(cap), a.data(), count);
    // a / cap rounds once (its error, times tanh' <= 1, moves tanh by at most |a / cap| u), tanh
    // takes its 4 ulps and the product one more rounding.
    Worst worst;
    for (int64_t i = 0; i < count; ++i) {
      const double t = std::tanh(double(a0[i]) / cap);
      worst.add(a[i], cap * t, cap * (std::abs(a0[i] / cap) * u + (kLibm + u) * std::abs(t)), i, 0);
      ASSERT_LE(std::abs(a[i]), cap) << i;
    }
    worst.expect_within("soft_cap, " + std::to_string(count));
  }
  float big[3] = {1e30f, -1e30f, 0.0f};
  soft_cap(float(cap), big, 3);
  EXPECT_EQ(big[0], 30.0f);
  EXPECT_EQ(big[1], -30.0f);
  EXPECT_EQ(big[2], 0.0f);
}

TEST(Kernels, AllFinite) {
  for (int64_t count : {1000, 70001}) {
    std::vector<float> p = random_floats(count, 71, -1e30f, 1e30f);
    p[1] = std::numeric_limits<float>::max(), p[2] = -std::numeric_limits<float>::max();
    p[3] = std::numeric_limits<float>::denorm_min(), p[4] = -0.0f;
    EXPECT_TRUE(all_finite(p.data(), count)) << count;
    for (float bad : {kNaN, INFINITY, -INFINITY})
      for (int64_t at : {int64_t(0), count / 2, count - 1}) {
        const float keep = p[at];
        p[at] = bad;
        EXPECT_FALSE(all_finite(p.data(), count)) << bad << " at " << at << " of " << count;
        p[at] = keep;
      }
  }
}

// ---- Thread count ------------------------------------------------------------------------------

// The tiles and attention tasks are cut by shape only: one thread and two give the same bytes.
TEST(Kernels, ResultsDoNotDependOnThreadCount) {
  const int n = 600, in = 11;
  const std::vector<float> x = padded_input(n, in, 81);
  AttentionSpec s = gqa(6, 2, 5);
  s.window = 100;
  const std::vector<float> q = random_floats(size_t(n) * 30, 82), k = random_floats(size_t(n) * 10, 83),
                           v = random_floats(size_t(n) * 10, 84);
  std::vector<float> products[2], outputs[2];
  for (int threads : {1, 2}) {
    set_thread_count(threads);
    Projection p(out_in(4097, in), 4097, in, true, n, 85);
    linear(p.job(), x.data(), n, in + 3);
    products[threads - 1] = p.y;
    outputs[threads - 1].resize(q.size());
    attention(s, q.data(), k.data(), v.data(), outputs[threads - 1].data(), n);
  }
  set_thread_count(0);
  EXPECT_EQ(std::memcmp(products[0].data(), products[1].data(), products[0].size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(outputs[0].data(), outputs[1].data(), outputs[0].size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace attnspec
