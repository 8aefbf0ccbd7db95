#include "attnspec/model/kernels.h"

#include <cblas.h>
#ifdef ATTNSPEC_HAVE_MVEC
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "attnspec/common/cpu.h"
#include "attnspec/model/forward.h"  // set_thread_count, thread_count, sgemm_gflops

// OpenBLAS's own thread control (not part of the CBLAS interface). The pool shutdown is looked up
// weakly: not every OpenBLAS build exports it.
extern "C" void openblas_set_num_threads(int);
extern "C" void blas_thread_shutdown_(void) __attribute__((weak));

namespace attnspec {
namespace {

int g_threads = 0;  // 0: not set yet (all cores)

// Elementwise loops below this many elements run on one thread: waking a team costs more.
constexpr int64_t kParallelMin = 1 << 16;

// x[i] = exp(x[i]). The MLP activations take hundreds of millions of exps per window; on CPUs
// with AVX2 they go eight at a time through glibc's vector expf (libmvec, the same accuracy class
// as expf), chosen once at run time, so the binary stays portable.
#ifdef ATTNSPEC_HAVE_MVEC
extern "C" __attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);

__attribute__((target("avx2,fma"))) void exp_inplace_avx2(float* x, int64_t len) {
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) _mm256_storeu_ps(x + i, _ZGVdN8v_expf(_mm256_loadu_ps(x + i)));
  for (; i < len; ++i) x[i] = std::exp(x[i]);
}

// The softmax's two passes over a row of scores, eight lanes at a time.
__attribute__((target("avx2,fma"))) float max_avx2(const float* x, int64_t len) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float mx = *std::max_element(lanes, lanes + 8);
  for (; i < len; ++i) mx = std::max(mx, x[i]);
  return mx;
}

__attribute__((target("avx2,fma"))) float exp_shifted_sum_avx2(float* x, int64_t len, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) {
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = 0;
  for (float l : lanes) sum += l;
  for (; i < len; ++i) sum += x[i] = std::exp(x[i] - shift);
  return sum;
}
#endif

void exp_inplace(float* x, int64_t len) {
#ifdef ATTNSPEC_HAVE_MVEC
  if (cpu_has_avx2_fma()) return exp_inplace_avx2(x, len);
#endif
  for (int64_t i = 0; i < len; ++i) x[i] = std::exp(x[i]);
}

float max_of(const float* x, int64_t len) {
#ifdef ATTNSPEC_HAVE_MVEC
  if (cpu_has_avx2_fma()) return max_avx2(x, len);
#endif
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < len; ++i) mx = std::max(mx, x[i]);
  return mx;
}

// x[i] = exp(x[i] - shift); returns the sum of the new x.
float exp_shifted_sum(float* x, int64_t len, float shift) {
#ifdef ATTNSPEC_HAVE_MVEC
  if (cpu_has_avx2_fma()) return exp_shifted_sum_avx2(x, len, shift);
#endif
  float sum = 0;
  for (int64_t i = 0; i < len; ++i) sum += x[i] = std::exp(x[i] - shift);
  return sum;
}

// A tile of a product: rows [r0, r0 + rows) of x times `cols` output columns of W, a
// single-threaded sgemm onto the tile's bias rows.
struct LinearTile {
  const float* w;      // the tile's first weight: [out, in] rows (sgemm's B transposed) or [in, out] columns
  int64_t ldw;
  bool w_out_in;
  const float* bias;  // the tile's first bias, or null
  float* y;
  int64_t ldy;
  int r0, rows;
  int64_t cols, in;
};

// The tiles of one product, appended to `tiles`. They depend only on the shapes: because the
// tiling does not depend on the thread count, neither do the results (OpenBLAS's own threading
// splits the work differently per count, which changes float32 rounding).
void add_tiles(const LinearJob& job, int n, std::vector<LinearTile>& tiles) {
  const LinearSpec& s = job.spec;
  const float* weight = job.weight;
  const float* bias = job.bias;
  if (s.head_stride > 0) {
    // A fused [out_total, in] weight whose heads are interleaved: one tile per block of rows and
    // head, each over that head's contiguous rows.
    constexpr int kTileRows = 512;
    for (int r0 = 0; r0 < n; r0 += kTileRows)
      for (int64_t c0 = 0; c0 < s.out; c0 += s.head_rows) {
        const int64_t stored = s.stored_row(c0);
        tiles.push_back({weight + stored * job.ldw, job.ldw, true, bias ? bias + stored : nullptr,
                         job.y + int64_t(r0) * job.ldy + c0, job.ldy, r0, std::min(kTileRows, n - r0), s.head_rows,
                         s.in});
      }
    return;
  }
  // Wide tiles run fastest (each packs its rows of x once per column tile and its columns of W
  // once per row tile): up to 512 rows x at least 2048 columns. Rows are then halved, down to
  // 128, until there are at least 4 tiles, so that a few threads stay busy on short windows and
  // narrow layers too.
  const int64_t col_tiles = std::max<int64_t>(1, s.out / 2048);
  const int64_t tile_cols = (s.out + col_tiles - 1) / col_tiles;
  int tile_rows = 512;
  while (tile_rows > 128 && (n + tile_rows - 1) / tile_rows * col_tiles < 4) tile_rows /= 2;
  const int64_t ld = job.ldw;  // [in, out_total] or [out, in]
  for (int r0 = 0; r0 < n; r0 += tile_rows)
    for (int64_t c0 = 0; c0 < s.out; c0 += tile_cols) {
      const float* wt = s.in_out_layout ? weight + s.col_offset + c0 : weight + (s.row_offset + c0) * ld;
      tiles.push_back({wt, ld, !s.in_out_layout, bias ? bias + s.col_offset + s.row_offset + c0 : nullptr,
                       job.y + int64_t(r0) * job.ldy + c0, job.ldy, r0, std::min(tile_rows, n - r0),
                       std::min(tile_cols, s.out - c0), s.in});
    }
}

}  // namespace

// The tiles of all the jobs are shared among the threads as one pool, so that a core that runs
// slower than the other (common on shared machines) costs at most part of one tile at the end of
// the pool, not at the end of every product.
void linears(std::initializer_list<LinearJob> jobs, const float* x, int n, int64_t ldx) {
  std::vector<LinearTile> tiles;
  for (const LinearJob& job : jobs) add_tiles(job, n, tiles);
#pragma omp parallel for schedule(dynamic) if (tiles.size() > 1)
  for (size_t i = 0; i < tiles.size(); ++i) {
    const LinearTile& t = tiles[i];
    // The tile starts as its bias rows and the product is added onto them (beta = 1): OpenBLAS
    // otherwise clears the tile first (beta = 0) and the bias would take a second pass over it.
    if (t.bias)
      for (int r = 0; r < t.rows; ++r) std::copy_n(t.bias, t.cols, t.y + int64_t(r) * t.ldy);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, t.w_out_in ? CblasTrans : CblasNoTrans, t.rows, static_cast<int>(t.cols),
                static_cast<int>(t.in), 1.0f, x + int64_t(t.r0) * ldx, ldx, t.w, t.ldw, t.bias ? 1.0f : 0.0f, t.y,
                t.ldy);
  }
}

void norm_rows(const NormSpec& s, const float* w, const float* b, const float* x, float* y, int rows, int dim,
               int64_t ld) {
#pragma omp parallel for schedule(static) if (int64_t(rows) * dim > kParallelMin)
  for (int i = 0; i < rows; ++i) {
    const float* xi = x + int64_t(i) * ld;
    float* yi = y + int64_t(i) * ld;
    // float64 sums, as ATen's CPU kernels accumulate float32; in vector lanes (omp simd lets the
    // compiler reorder the additions).
    double mean = 0, sq = 0;
    if (s.kind == NormKind::LayerNorm) {
#pragma omp simd reduction(+ : mean)
      for (int j = 0; j < dim; ++j) mean += xi[j];
      mean /= dim;
    }
#pragma omp simd reduction(+ : sq)
    for (int j = 0; j < dim; ++j) sq += (xi[j] - mean) * (xi[j] - mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(sq / dim + s.eps));
    const float m = static_cast<float>(mean);
    if (!w) {
      for (int j = 0; j < dim; ++j) yi[j] = (xi[j] - m) * inv + (b ? b[j] : 0.0f);
    } else if (s.plus_one) {
      for (int j = 0; j < dim; ++j) yi[j] = (xi[j] - m) * inv * (1.0f + w[j]) + (b ? b[j] : 0.0f);
    } else {
      for (int j = 0; j < dim; ++j) yi[j] = (xi[j] - m) * inv * w[j] + (b ? b[j] : 0.0f);
    }
  }
}

void rope(const RopeSpec& s, float* t, int n, int heads) {
  const int half = s.rotary_dim / 2, ld = heads * s.head_dim;
#pragma omp parallel for schedule(static) if (int64_t(n) * ld > kParallelMin)
  for (int pos = 0; pos < n; ++pos) {
    std::vector<float> cos_v(half), sin_v(half);
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * s.inv_freq[i];
      cos_v[i] = std::cos(angle) * s.attention_scaling;
      sin_v[i] = std::sin(angle) * s.attention_scaling;
    }
    for (int h = 0; h < heads; ++h) {
      float* x = t + int64_t(pos) * ld + int64_t(h) * s.head_dim;
      for (int i = 0; i < half; ++i) {
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cos_v[i] - x2 * sin_v[i];
        x[i + half] = x2 * cos_v[i] + x1 * sin_v[i];
      }
    }
  }
}

// One task is one KV head and one block of query rows, for all the query heads that share the KV
// head: their rows are stacked into one product, so each block of keys and values is packed once
// per group rather than once per head. Online softmax: with m the running max of a row, l the
// running sum of exp(x - m) and o the running sum of exp(x - m) v, a new block with max m' > m
// rescales l and o by exp(m - m'); o / l at the end.
void attention(const AttentionSpec& s, const float* q, const float* k, const float* v, float* out, int n) {
  // 64 query rows x 256 keys: a block of scores (64 KB for one head), its keys and its values stay
  // in L2 while the two products and the softmax pass over them.
  constexpr int kBlock = 64, kKeys = 256;
  const int dh = s.head_dim, ldq = s.n_heads * dh, ldk = s.n_kv_heads * dh, group = s.n_heads / s.n_kv_heads;
  const int window = s.causal ? s.window : 0;
  const float scale = s.scale;
  const float cap = s.softcap;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int blocks = (n + kBlock - 1) / kBlock;
  // Groups and blocks run in parallel; each BLAS call inside is single-threaded. The task order
  // does not depend on the thread count; the last (largest, causal) blocks are handed out first.
#pragma omp parallel
  {
    const size_t stacked = size_t(group) * kBlock;
    std::vector<float> scores(stacked * kKeys), qs(stacked * dh), os(stacked * dh), run_max(stacked), run_sum(stacked);
#pragma omp for schedule(dynamic)
    for (int task = 0; task < s.n_kv_heads * blocks; ++task) {
      const int g = task / blocks, block = blocks - 1 - task % blocks;
      const int i0 = block * kBlock, i1 = std::min(n, i0 + kBlock), rows = i1 - i0, M = group * rows;
      // Keys any row of the block sees: [j0, j_end).
      const int j0 = window > 0 ? std::max(0, i0 - window + 1) : 0, j_end = s.causal ? i1 : n;
      for (int m = 0; m < group; ++m)  // stack the group's query rows: qs[m * rows + r] = q_(g*group+m)[i0 + r]
        for (int r = 0; r < rows; ++r)
          std::copy_n(q + int64_t(i0 + r) * ldq + (g * group + m) * dh, dh, qs.data() + (int64_t(m) * rows + r) * dh);
      std::fill_n(run_max.data(), M, neg_inf);
      std::fill_n(run_sum.data(), M, 0.0f);
      for (int b0 = j0; b0 < j_end; b0 += kKeys) {
        const int cols = std::min(kKeys, j_end - b0);
        // scores[M, cols] = s * Q[i0:i1] K_g[b0:b0 + cols]^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, cols, dh, scale, qs.data(), dh,
                    k + int64_t(b0) * ldk + g * dh, ldk, 0.0f, scores.data(), cols);
        for (int R = 0; R < M; ++R) {
          const int i = i0 + R % rows;
          // This row's visible keys within the block: [lo, hi].
          const int lo = std::max(b0, window > 0 ? i - window + 1 : 0);
          const int hi = std::min(b0 + cols - 1, s.causal ? i : n - 1);
          float* row = scores.data() + int64_t(R) * cols;
          if (lo > hi) {  // none: the row adds nothing from this block
            std::fill_n(row, cols, 0.0f);
            continue;
          }
          float* live = row + (lo - b0);
          const int len = hi - lo + 1;
          if (cap > 0)
            for (int j = 0; j < len; ++j) live[j] = cap * std::tanh(live[j] / cap);
          const float block_max = max_of(live, len);
          if (block_max > run_max[R]) {  // rescale what the row has so far to the new max
            const float shrink = std::exp(run_max[R] - block_max);  // 0 for the row's first keys
            run_sum[R] *= shrink;
            if (b0 > j0)  // the first block's product overwrites os: nothing to rescale yet
              for (int e = 0; e < dh; ++e) os[int64_t(R) * dh + e] *= shrink;
            run_max[R] = block_max;
          }
          run_sum[R] += exp_shifted_sum(live, len, run_max[R]);
          std::fill(row, live, 0.0f);
          std::fill(live + len, row + cols, 0.0f);
        }
        // os[M, d_h] += P V_g[b0:b0 + cols]  (the first block overwrites)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, dh, cols, 1.0f, scores.data(), cols,
                    v + int64_t(b0) * ldk + g * dh, ldk, b0 == j0 ? 0.0f : 1.0f, os.data(), dh);
      }
      // Every row sees at least itself (causal) or every key (encoder): run_sum > 0.
      for (int m = 0; m < group; ++m)
        for (int r = 0; r < rows; ++r) {
          const float* o = os.data() + (int64_t(m) * rows + r) * dh;
          float* dst = out + int64_t(i0 + r) * ldq + (g * group + m) * dh;
          const float inv = 1.0f / run_sum[m * rows + r];
          for (int e = 0; e < dh; ++e) dst[e] = o[e] * inv;
        }
    }
  }
}

void activate(MlpKind kind, float* a, const float* b, int64_t count) {
  if (kind == MlpKind::GeluExact) {
#pragma omp parallel for schedule(static) if (count > kParallelMin)
    for (int64_t i = 0; i < count; ++i) a[i] = 0.5f * a[i] * (1.0f + std::erf(a[i] * 0.7071067811865476f));
    return;
  }
  if (kind == MlpKind::Relu) {
#pragma omp parallel for schedule(static) if (count > kParallelMin)
    for (int64_t i = 0; i < count; ++i) a[i] = std::max(a[i], 0.0f);
    return;
  }
  // gelu_new: 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3);
  // SwiGLU: silu(gate) * up = gate sigmoid(gate) * up; GeGLU: gelu_new(gate) * up. Each is one exp
  // per element, taken in chunks through the vector exp.
  constexpr int64_t kChunk = 2048;
#pragma omp parallel for schedule(static) if (count > kParallelMin)
  for (int64_t first = 0; first < count; first += kChunk) {
    float t[kChunk];
    const int64_t len = std::min(kChunk, count - first);
    float* x = a + first;
    if (kind == MlpKind::SwiGLU)
      for (int64_t i = 0; i < len; ++i) t[i] = -x[i];
    else
      for (int64_t i = 0; i < len; ++i) t[i] = -2.0f * 0.7978845608028654f * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
    exp_inplace(t, len);
    if (kind == MlpKind::GeluTanh)
      for (int64_t i = 0; i < len; ++i) x[i] = x[i] / (1.0f + t[i]);
    else  // SwiGLU, GeGLU: activation(gate) * up
      for (int64_t i = 0; i < len; ++i) x[i] = x[i] / (1.0f + t[i]) * b[first + i];
  }
}

void soft_cap(float cap, float* a, int64_t count) {
#pragma omp parallel for schedule(static) if (count > kParallelMin)
  for (int64_t i = 0; i < count; ++i) a[i] = std::tanh(a[i] / cap) * cap;
}

void add_into(float* h, const float* x, int64_t count) {
#pragma omp parallel for schedule(static) if (count > kParallelMin)
  for (int64_t i = 0; i < count; ++i) h[i] += x[i];
}

void add_parallel_residual(float* h, const float* y, const float* z, int64_t count) {
#pragma omp parallel for schedule(static) if (count > kParallelMin)
  for (int64_t i = 0; i < count; ++i) h[i] = z[i] + y[i] + h[i];
}

bool all_finite(const float* p, int64_t count) {
  // x * 0 is 0 for every finite x and NaN for an Inf or a NaN: one vectorisable sum finds both.
  float probe = 0.0f;
#pragma omp parallel for simd reduction(+ : probe) schedule(static) if (count > kParallelMin)
  for (int64_t i = 0; i < count; ++i) probe += p[i] * 0.0f;
  return probe == 0.0f;
}

void set_thread_count(int threads) {
  g_threads = threads > 0 ? threads : omp_get_num_procs();
  // All parallelism is attnspec's own (fixed tiles over OpenMP threads); every BLAS call is
  // single-threaded, which keeps results independent of the thread count.
  openblas_set_num_threads(1);
  // OpenBLAS starts its worker pool when the library loads, and an idle worker spins in
  // sched_yield for about 0.1 s before it sleeps, taking a core from attnspec's own threads at the
  // start of every run. Nothing here uses the pool, so it is stopped (a later multi-threaded BLAS
  // call, as in sgemm_gflops, starts it again).
  if (blas_thread_shutdown_) blas_thread_shutdown_();
  omp_set_num_threads(g_threads);
}

int thread_count() {
  if (g_threads == 0) set_thread_count(0);
  return g_threads;
}

double sgemm_gflops(int size, int threads, int repeats) {
  using Clock = std::chrono::steady_clock;
  std::vector<float> a(size_t(size) * size, 1.0f), b(size_t(size) * size, 0.5f), c(size_t(size) * size);
  openblas_set_num_threads(threads);
  double best = 1e300;
  for (int r = 0; r <= repeats; ++r) {  // the first product warms up
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a.data(), size, b.data(), size, 0.0f,
                c.data(), size);
    if (r > 0) best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  openblas_set_num_threads(1);
  return 2.0 * size * size * double(size) / best / 1e9;
}

double sgemm_tile_seconds(int m, int n, int k, int repeats) {
  using Clock = std::chrono::steady_clock;
  std::vector<float> x(size_t(m) * k, 0.5f), w(size_t(n) * k, 0.25f), y(size_t(m) * n);
  openblas_set_num_threads(1);
  double best = 1e300;
  for (int r = 0; r <= repeats; ++r) {  // the first product warms up
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f, y.data(), n);
    if (r > 0) best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace attnspec
