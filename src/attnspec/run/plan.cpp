#include "attnspec/run/plan.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "attnspec/common/error.h"
#include "attnspec/common/format.h"
#include "attnspec/common/parallel.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/columns.h"
#include "attnspec/run/inputs.h"
#include "attnspec/run/outputs.h"
#include "attnspec/spectra/compression.h"
#include "attnspec/spectra/field_factors.h"
#include "attnspec/tokenize/text.h"
#include "attnspec/tokenize/tokenizer.h"

namespace attnspec {
namespace {

using Clock = std::chrono::steady_clock;

std::string fmt(double v) { return format_number(v); }

nlohmann::json plan_conventions() {
  return {
      {"field", "E~ = s Q_h (K_g - mean_j K_g)^T over the window (row-centred: softmax over any key set is unchanged "
                "by the centring, so softmax of E~ over the visible keys is the model's attention)"},
      {"rank_k", "E~_k = the best rank-k approximation of E~ (truncated SVD from the exact QR reduction); k = 0 is the "
                 "all-equal field, i.e. uniform attention over the visible keys"},
      {"softmax", "over the keys the model's mask lets row i see: j <= i, and i - j < W for a sliding-window layer; all "
                  "n keys for an encoder (bidirectional attention, summary model.attention)"},
      {"tv", "mean over all n query rows of 1/2 sum_j |P_ij - P^(k)_ij|, P = the model's attention (float64 from the "
             "float32 q, k)"},
      {"kl", "mean over all n query rows of KL(P_i || P^(k)_i) in nats"},
      {"aggregation", "plan.csv: per (layer, head) the maximum over windows of the window's mean TV (and of its mean "
                      "KL): the worst window decides"},
      {"k", "smallest evaluated rank k such that the aggregated TV is <= tolerance at k and at every larger evaluated "
            "rank (robust to the curve's small non-monotone wiggles); r = min(n, d_h) always qualifies"},
      {"flops_saved", "1 - k / d_h: the share of the q.k score multiply-adds a rank-k factorisation saves"},
      {"key_cache_saved", "1 - min(d_h, sum of k over the query heads sharing the KV head) / d_h: the key cache of a "
                          "KV head must serve all its query heads' subspaces, so this is a lower bound of the saving; "
                          "the same value on every head of the group"},
      {"oracle", "the rank-k subspaces are each window's own optimal ones (an oracle): the plan bounds what any fixed "
                 "rank-k projection could achieve, it does not provide one"},
  };
}

}  // namespace

nlohmann::json run_plan(const Request& rq) {
  const auto t_start = Clock::now();
  if (rq.tolerances.empty()) throw InputError("plan needs at least one --tolerance EPS");
  for (double eps : rq.tolerances)
    if (!(eps > 0 && eps < 1)) throw InputError("--tolerance must be in (0, 1), got " + fmt(eps));
  std::vector<double> tolerances(rq.tolerances);
  std::sort(tolerances.begin(), tolerances.end());
  tolerances.erase(std::unique(tolerances.begin(), tolerances.end()), tolerances.end());

  auto model = load_model(rq.model);
  const ModelConfig& c = model->config;
  PreparedInput prepared = prepare_input(rq, c);
  const Windows& windows = prepared.windows;
  nlohmann::json& input = prepared.description;
  if (std::filesystem::exists(rq.out) && !std::filesystem::is_directory(rq.out))
    throw input_error(rq.out.string(), "exists and is not a folder");

  set_thread_count(rq.threads);
  const int L = c.n_layers, H = c.n_heads, G = c.n_kv_heads, dh = c.head_dim;
  const int nw = static_cast<int>(windows.windows.size());
  const int r = std::min(rq.ctx, dh);
  const std::vector<int> ks = compression_ranks(r, rq.geometric);
  const int nk = static_cast<int>(ks.size());

  // curves[((w * L + l) * H + h) * nk + e]
  std::vector<double> tv(size_t(nw) * L * H * nk), kl(tv.size());
  const bool tty = ::isatty(STDERR_FILENO);
  const auto t_windows = Clock::now();
  for (int w = 0; w < nw; ++w) {
    forward(*model, windows.windows[w], L - 1, [&](const LayerActivations& a) {
      const long ldq = long(H) * dh, ldk = long(G) * dh;
      FirstException error;
#pragma omp parallel for schedule(dynamic)
      for (int h = 0; h < H; ++h) error.capture([&] {
        const int g = c.kv_head_of(h);
        const FieldFactors f = field_factors(a.q + h * dh, ldq, a.k + g * dh, ldk, a.n, dh, c.softmax_scale[a.layer]);
        const CompressionCurve curve = compression_curve(f, c.sliding_window[a.layer], ks, c.causal);
        const size_t base = ((size_t(w) * L + a.layer) * H + h) * nk;
        std::copy(curve.tv.begin(), curve.tv.end(), tv.begin() + base);
        std::copy(curve.kl.begin(), curve.kl.end(), kl.begin() + base);
      });
      error.rethrow();
    });
    if (!rq.quiet) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_windows).count();
      std::fprintf(stderr, "%sattnspec plan: window %d/%d  %.1f s elapsed, eta %.1f s%s", tty ? "\r" : "", w + 1, nw,
                   elapsed, elapsed / (w + 1) * (nw - w - 1), tty ? "  " : "\n");
      std::fflush(stderr);
    }
  }
  if (!rq.quiet && tty) std::fprintf(stderr, "\n");

  // plan_curves.csv: every window, head and evaluated rank.
  std::string curves = csv_header(plan_curve_columns());
  for (int w = 0; w < nw; ++w)
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h)
        for (int e = 0; e < nk; ++e) {
          const size_t i = ((size_t(w) * L + l) * H + h) * nk + e;
          append_csv_row(curves, plan_curve_columns(),
                         {.window = w, .layer = l, .head = h, .kv_head = c.kv_head_of(h), .n = rq.ctx, .k = ks[e],
                          .tv = tv[i], .kl = kl[i]});
        }

  // plan.csv: per tolerance and head, the worst window decides.
  std::string plan = csv_header(plan_columns());
  nlohmann::json per_tolerance = nlohmann::json::array();
  for (double eps : tolerances) {
    std::vector<int> k_of(size_t(L) * H);
    std::vector<double> tv_at(k_of.size()), kl_at(k_of.size());
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        std::vector<double> worst_tv(nk, 0.0), worst_kl(nk, 0.0);
        for (int w = 0; w < nw; ++w)
          for (int e = 0; e < nk; ++e) {
            const size_t i = ((size_t(w) * L + l) * H + h) * nk + e;
            worst_tv[e] = std::max(worst_tv[e], tv[i]);
            worst_kl[e] = std::max(worst_kl[e], kl[i]);
          }
        int e_pick = nk - 1;
        while (e_pick > 0 && worst_tv[e_pick - 1] <= eps) --e_pick;
        k_of[size_t(l) * H + h] = ks[e_pick];
        tv_at[size_t(l) * H + h] = worst_tv[e_pick];
        kl_at[size_t(l) * H + h] = worst_kl[e_pick];
      }
    std::vector<int> group_rank(size_t(L) * G, 0);
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) group_rank[size_t(l) * G + c.kv_head_of(h)] += k_of[size_t(l) * H + h];
    for (int& g : group_rank) g = std::min(g, dh);
    std::vector<double> ks_all;
    double flops = 0;
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        const int k = k_of[size_t(l) * H + h], grank = group_rank[size_t(l) * G + c.kv_head_of(h)];
        ks_all.push_back(k);
        flops += 1.0 - double(k) / dh;
        append_csv_row(plan, plan_columns(),
                       {.tolerance = eps, .layer = l, .head = h, .kv_head = c.kv_head_of(h), .head_dim = dh, .k = k,
                        .windows = nw, .kv_group_rank = grank, .tv = tv_at[size_t(l) * H + h],
                        .kl = kl_at[size_t(l) * H + h]});
      }
    const double total_group = std::accumulate(group_rank.begin(), group_rank.end(), 0.0);
    std::sort(ks_all.begin(), ks_all.end());
    const size_t m = ks_all.size();
    per_tolerance.push_back({{"tolerance", eps},
                             {"k_min", ks_all.front()},
                             {"k_median", m % 2 ? ks_all[m / 2] : 0.5 * (ks_all[m / 2 - 1] + ks_all[m / 2])},
                             {"k_mean", std::accumulate(ks_all.begin(), ks_all.end(), 0.0) / m},
                             {"k_max", ks_all.back()},
                             {"flops_saved", flops / m},
                             {"key_cache_saved", 1.0 - total_group / (double(L) * G * dh)}});
  }

  nlohmann::json summary = {
      {"attnspec_version", ATTNSPEC_VERSION},
      {"command", "plan"},
      {"model", model_summary(rq.model, c)},
      {"input", input},
      {"ctx", rq.ctx},
      {"windows", nw},
      {"tolerances", tolerances},
      {"ranks", rq.geometric ? "geometric" : "all"},
      {"ranks_evaluated", ks},
      {"threads", thread_count()},
      {"conventions", plan_conventions()},
      {"plan", per_tolerance},
      {"timing_seconds", {{"total", std::chrono::duration<double>(Clock::now() - t_start).count()}}},
  };
  std::error_code ec;
  std::filesystem::create_directories(rq.out, ec);
  if (ec || !std::filesystem::is_directory(rq.out)) throw input_error(rq.out.string(), "cannot create output folder");
  write_file_atomically(rq.out / "plan_curves.csv", curves);
  write_file_atomically(rq.out / "plan.csv", plan);
  write_file_atomically(rq.out / "plan.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace attnspec
