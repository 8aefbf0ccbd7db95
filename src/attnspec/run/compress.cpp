#include "attnspec/run/compress.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <unordered_map>

#include "attnspec/common/error.h"
#include "attnspec/common/format.h"
#include "attnspec/common/parallel.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/columns.h"
#include "attnspec/run/inputs.h"
#include "attnspec/run/outputs.h"
#include "attnspec/spectra/subspace.h"

namespace attnspec {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kShingle = 32;  // evaluation windows may share no run of this many tokens with calibration

nlohmann::json compress_conventions() {
  return {
      {"logits", "a compressed head's logits are s (L^T q).(R^T k) with q, k its post-RoPE query and key (keys projected "
                 "as a key cache would store them) and L, R the d_h x k maps of its KV head; every other part of the "
                 "model is unchanged"},
      {"methods",
       {{"pca", "L = R = the top-k eigenvectors of sum k k^T over calibration keys (the keys' best rank-k subspace)"},
        {"field", "the rank-k M = L R^T minimising sum_w ||Q_w (I - M) Kc_w^T||_F^2 with the calibration statistics "
                  "pooled (S_Q = sum of Q^T Q over the KV head's query heads, S_Kc = sum Kc^T Kc, Kc the keys centred "
                  "over their window): the error of the row-centred logit field E~ = s Q Kc^T, which is all the softmax "
                  "sees; solved by the SVD of S_Q^(1/2) S_Kc^(1/2) (Eckart-Young), L = S_Q^(-1/2) U_k S_k^(1/2), "
                  "R = S_Kc^(-1/2) V_k S_k^(1/2) (pseudo-inverses)"},
        {"weights", "the same factorisation of S_Q = sum_h W_Q^(h) W_Q^(h)T and S_K = W_K W_K^T: the best rank-k "
                    "approximation of W_Q^T W_K, data-free (ignores RoPE and biases)"}}},
      {"policies",
       {{"uniform", "every KV head keeps round(budget * d_h) key dimensions (at least 1)"},
        {"field", "round(budget * layers * KV heads * d_h) key dimensions shared among KV heads, each at least 1, one "
                  "at a time to the head whose next dimension adds the largest share of its own pooled field energy "
                  "(sigma_(k+1)^2 / sum sigma^2 of S_Q^(1/2) S_Kc^(1/2))"}}},
      {"budget", "the share of key dimensions asked to be kept model-wide; key_dims is what the policy kept"},
      {"key_cache_saved", "1 - key_dims / (layers * KV heads * d_h): the keys' share of the KV cache saved (values unchanged)"},
      {"field_share", "sum of the first k sigma^2 over all sigma^2 of the KV head's pooled calibration field spectrum"},
      {"perplexity", "exp of the mean negative log-likelihood (nats) of each evaluation window's next tokens (positions "
                     "0 .. n-2 predicting 1 .. n-1)"},
      {"kl", "per token, KL(P_orig || P_comp) = sum_v P_orig(v) log(P_orig(v) / P_comp(v)) in nats over the whole "
             "vocabulary at every position of every evaluation window; mean, median, 95th / 99th percentile (nearest "
             "rank) and max over tokens, as llama.cpp's --kl-divergence"},
      {"top1", "share of positions whose most likely next token is the same in both models"},
      {"tv", "per head and window, the mean over query rows of 1/2 sum_j |P_ij - P'_ij|, P the softmax of the head's "
             "logits and P' of the compressed logits, both on the compressed model's own activations, over the keys "
             "the mask lets row i see (soft-capped as the model does)"},
      {"disjoint", "no evaluation window shares a run of 32 consecutive tokens with the calibration texts"},
  };
}

// The windows of `files`, each tokenized with the model's tokenizer and cut as analyze cuts them,
// in file order, at most `cap` of them; `all` receives every window of the files (for the overlap check).
std::vector<std::vector<int32_t>> windows_of(const Request& rq, const std::vector<std::filesystem::path>& files,
                                             const ModelConfig& c, int cap, std::vector<std::vector<int32_t>>& all,
                                             nlohmann::json& described) {
  std::vector<std::vector<int32_t>> out;
  described = nlohmann::json::array();
  for (const auto& f : files) {
    Request one = rq;
    one.text = f;
    one.token_ids.clear();
    one.max_windows = 0;
    PreparedInput p = prepare_input(one, c);
    described.push_back(p.description);
    for (auto& w : p.windows.windows) {
      if (int(out.size()) < cap) out.push_back(w);
      all.push_back(std::move(w));
    }
  }
  return out;
}

uint64_t shingle_hash(const int32_t* ids) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < kShingle; ++i) h = (h ^ uint32_t(ids[i])) * 1099511628211ull;
  return h;
}

// Refuses evaluation windows that share a run of kShingle tokens with any calibration window.
void check_disjoint(const std::vector<std::vector<int32_t>>& calibration, const std::vector<std::vector<int32_t>>& evaluation,
                    const Request& rq) {
  std::unordered_map<uint64_t, int> seen;
  for (size_t w = 0; w < calibration.size(); ++w)
    for (size_t i = 0; i + kShingle <= calibration[w].size(); ++i) seen.emplace(shingle_hash(&calibration[w][i]), int(w));
  for (size_t w = 0; w < evaluation.size(); ++w)
    for (size_t i = 0; i + kShingle <= evaluation[w].size(); ++i)
      if (seen.count(shingle_hash(&evaluation[w][i])))
        throw InputError("evaluation window " + std::to_string(w) + " (of " + rq.evaluate.front().string() +
                         " ...) shares " + std::to_string(kShingle) + " consecutive tokens (from position " +
                         std::to_string(i) + ") with the calibration text: calibration and evaluation must be disjoint");
}

// S += X^T X for the n x d_h block X at x (row stride ld), centred over rows when `centre`.
void add_gram(std::vector<double>& S, const float* x, long ld, int n, int dh, bool centre) {
  std::vector<double> a(size_t(n) * dh), mean(dh, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dh; ++j) mean[j] += x[i * ld + j];
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dh; ++j) a[size_t(i) * dh + j] = x[i * ld + j] - (centre ? mean[j] / n : 0.0);
  // Column-major, a is X^T (d_h x n): S += a a^T (upper triangle; mirrored by symmetrise).
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, dh, n, 1.0, a.data(), dh, 1.0, S.data(), dh);
}

void symmetrise(std::vector<double>& S, int d) {
  for (int j = 0; j < d; ++j)
    for (int i = j + 1; i < d; ++i) S[size_t(j) * d + i] = S[size_t(i) * d + j];
}

// S += W W^T for a head's W [d_h x d] read through ProjectionHeads' strides.
void add_weight_gram(std::vector<double>& S, const ProjectionHeads& p, int head, int dh, int d) {
  const float* w = p.head[head];
  for (int i = 0; i < dh; ++i)
    for (int j = 0; j <= i; ++j) {
      double s = 0;
      for (int c = 0; c < d; ++c) s += double(w[i * p.row_step + c * p.col_step]) * w[j * p.row_step + c * p.col_step];
      S[size_t(i) * dh + j] += s;
      if (i != j) S[size_t(j) * dh + i] += s;
    }
}

struct FloatMap {
  int k = 0;
  std::vector<float> L, R;  // d_h x k column-major
};

// Mean over query rows of the TV between softmax(s q k^T) and softmax(s qp kp^T) over the keys each
// row sees (causal, within `window` when > 0), logits soft-capped at `cap` when > 0.
double attention_tv(const float* q, long ldq, const float* k, long ldk, int dh, const float* qp, const float* kp, int kd,
                    int n, double s, int window, double cap) {
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dh, 1.0f, q, int(ldq), k, int(ldk), 0.0f, a.data(), n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, kd, 1.0f, qp, kd, kp, kd, 0.0f, b.data(), n);
  double total = 0;
  std::vector<double> pa(n), pb(n);
  for (int i = 0; i < n; ++i) {
    const int lo = window > 0 ? std::max(0, i - window + 1) : 0;
    double ma = -INFINITY, mb = -INFINITY;
    for (int j = lo; j <= i; ++j) {
      double x = s * a[size_t(i) * n + j], y = s * b[size_t(i) * n + j];
      if (cap > 0) x = cap * std::tanh(x / cap), y = cap * std::tanh(y / cap);
      pa[j] = x, pb[j] = y;
      ma = std::max(ma, x), mb = std::max(mb, y);
    }
    double za = 0, zb = 0;
    for (int j = lo; j <= i; ++j) za += (pa[j] = std::exp(pa[j] - ma)), zb += (pb[j] = std::exp(pb[j] - mb));
    double tv = 0;
    for (int j = lo; j <= i; ++j) tv += std::abs(pa[j] / za - pb[j] / zb);
    total += 0.5 * tv;
  }
  return total / n;
}

// log-softmax of a logits row, in float64.
void log_softmax(const float* x, int v, std::vector<double>& out) {
  out.resize(v);
  double m = -INFINITY, z = 0;
  for (int i = 0; i < v; ++i) m = std::max(m, double(x[i]));
  for (int i = 0; i < v; ++i) z += std::exp(double(x[i]) - m);
  const double lz = m + std::log(z);
  for (int i = 0; i < v; ++i) out[i] = double(x[i]) - lz;
}

double percentile(const std::vector<double>& sorted, double p) {  // nearest rank
  if (sorted.empty()) return NAN;
  const size_t r = size_t(std::ceil(p * double(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(r, 1)) - 1];
}

// One evaluated configuration: its ranks per (layer, KV head) and maps.
struct Config {
  std::string method, policy;
  double budget = 0;
  std::vector<int> ranks;                    // [L * G]
  std::vector<const FloatMap*> maps;         // [L * G]
  std::vector<double> kl, tv_sum;            // per token; per (layer, query head)
  double nll = 0, top1 = 0;
  long tokens = 0, predicted = 0, tv_count = 0;
};

void write_safetensors(const std::filesystem::path& path, const Config& cfg, const ModelConfig& c,
                       const nlohmann::json& metadata) {
  const int L = c.n_layers, G = c.n_kv_heads, dh = c.head_dim;
  nlohmann::json header = nlohmann::json::object();
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [key, value] : metadata.items()) meta[key] = value.is_string() ? value.get<std::string>() : value.dump();
  header["__metadata__"] = meta;
  std::string data;
  auto add = [&](const std::string& name, const std::vector<float>& cm, int k) {  // column-major d_h x k -> row-major
    const size_t begin = data.size();
    for (int i = 0; i < dh; ++i)
      for (int col = 0; col < k; ++col) {
        const float v = cm[size_t(col) * dh + i];
        data.append(reinterpret_cast<const char*>(&v), sizeof v);
      }
    header[name] = {{"dtype", "F32"}, {"shape", {dh, k}}, {"data_offsets", {begin, data.size()}}};
  };
  for (int l = 0; l < L; ++l)
    for (int g = 0; g < G; ++g) {
      const FloatMap& m = *cfg.maps[size_t(l) * G + g];
      const std::string base = "layers." + std::to_string(l) + ".kv_heads." + std::to_string(g) + ".";
      add(base + "query", m.L, m.k);
      add(base + "key", m.R, m.k);
    }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const uint64_t size = text.size();
  for (int i = 0; i < 8; ++i) file[i] = char((size >> (8 * i)) & 0xff);
  write_file_atomically(path, file + text + data);
}

}  // namespace

nlohmann::json run_compress(const Request& rq) {
  const auto t_start = Clock::now();
  for (double b : rq.budgets)
    if (!(b > 0 && b <= 1)) throw InputError("--budget must be in (0, 1], got " + format_number(b));
  if (!(rq.export_budget > 0 && rq.export_budget <= 1))
    throw InputError("--export-budget must be in (0, 1], got " + format_number(rq.export_budget));
  auto model = load_model(rq.model);
  const ModelConfig& c = model->config;
  if (!c.causal)
    throw input_error(rq.model.string(), "compress judges a model by its next-token distribution; this " + c.family +
                                             " encoder has none (no causal LM head)");
  if (model->lm_head.weight.empty())  // before any work: forward_logits would say the same at the end
    throw input_error(rq.model.string(), "no LM head (" + model->head_missing + "): compress judges the model by its "
                                         "next-token distribution");
  if (std::filesystem::exists(rq.out) && !std::filesystem::is_directory(rq.out))
    throw input_error(rq.out.string(), "exists and is not a folder");

  // Windows, and the promise that evaluation is on text the maps never saw.
  std::vector<std::vector<int32_t>> all_calibration, all_evaluation;
  nlohmann::json calibration_inputs, evaluation_inputs;
  const auto calibration = windows_of(rq, rq.calibrate, c, rq.calibration_windows, all_calibration, calibration_inputs);
  const auto evaluation = windows_of(rq, rq.evaluate, c, rq.evaluation_windows, all_evaluation, evaluation_inputs);
  check_disjoint(all_calibration, evaluation, rq);

  set_thread_count(rq.threads);
  const int L = c.n_layers, H = c.n_heads, G = c.n_kv_heads, dh = c.head_dim, V = c.vocab_size;
  const bool tty = ::isatty(STDERR_FILENO);
  auto progress = [&](const std::string& what, int done, int total, Clock::time_point since) {
    if (rq.quiet) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - since).count();
    std::fprintf(stderr, "%sattnspec compress: %s %d/%d  %.1f s elapsed, eta %.1f s%s", tty ? "\r" : "", what.c_str(),
                 done, total, elapsed, elapsed / done * (total - done), tty ? "  " : "\n");
    if (tty && done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };

  // Calibration: per (layer, KV head) the second moments of keys, centred keys and queries.
  const size_t cells = size_t(L) * G, dd = size_t(dh) * dh;
  std::vector<std::vector<double>> S_K(cells, std::vector<double>(dd)), S_Kc = S_K, S_Q = S_K;
  const auto t_cal = Clock::now();
  for (size_t w = 0; w < calibration.size(); ++w) {
    forward(*model, calibration[w], L - 1, [&](const LayerActivations& a) {
      FirstException error;
#pragma omp parallel for schedule(dynamic)
      for (int g = 0; g < G; ++g) error.capture([&] {
        const size_t cell = size_t(a.layer) * G + g;
        add_gram(S_K[cell], a.k + g * dh, long(G) * dh, a.n, dh, false);
        add_gram(S_Kc[cell], a.k + g * dh, long(G) * dh, a.n, dh, true);
        for (int h = 0; h < H; ++h)
          if (c.kv_head_of(h) == g) add_gram(S_Q[cell], a.q + h * dh, long(H) * dh, a.n, dh, false);
      });
      error.rethrow();
    });
    progress("calibration window", int(w + 1), int(calibration.size()), t_cal);
  }
  for (size_t cell = 0; cell < cells; ++cell) symmetrise(S_K[cell], dh), symmetrise(S_Kc[cell], dh), symmetrise(S_Q[cell], dh);

  // The data-free statistics, when asked for.
  const auto wants = [&](const std::string& m) {
    return std::count(rq.methods.begin(), rq.methods.end(), m) > 0 || rq.export_method == m;
  };
  std::vector<std::vector<double>> W_Q, W_K;
  if (wants("weights")) {
    W_Q.assign(cells, std::vector<double>(dd));
    W_K = W_Q;
    for (int l = 0; l < L; ++l) {
      const ProjectionHeads q = query_heads(*model, l), k = key_heads(*model, l);
      for (int g = 0; g < G; ++g) {
        add_weight_gram(W_K[size_t(l) * G + g], k, g, dh, c.d_model);
        for (int h = 0; h < H; ++h)
          if (c.kv_head_of(h) == g) add_weight_gram(W_Q[size_t(l) * G + g], q, h, dh, c.d_model);
      }
    }
  }

  // The pooled field spectra (the field policy's input and field_share).
  std::vector<std::vector<double>> spectra(cells);
  for (size_t cell = 0; cell < cells; ++cell) spectra[cell] = whitened_spectrum(S_Q[cell], S_Kc[cell], dh);
  auto ranks_for = [&](const std::string& policy, double budget) {
    if (policy == "uniform") return std::vector<int>(cells, std::clamp(int(std::lround(budget * dh)), 1, dh));
    const long total = std::clamp(long(std::llround(budget * double(cells) * dh)), long(cells), long(cells) * dh);
    return field_ranks(spectra, dh, total);
  };
  std::map<std::tuple<std::string, size_t, int>, FloatMap> map_cache;
  auto map_for = [&](const std::string& method, size_t cell, int k) -> const FloatMap* {
    auto [it, fresh] = map_cache.try_emplace({method, cell, k});
    if (fresh) {
      const QueryKeyMap m = method == "pca"     ? pca_map(S_K[cell], dh, k)
                            : method == "field" ? whitened_map(S_Q[cell], S_Kc[cell], dh, k)
                                                : whitened_map(W_Q[cell], W_K[cell], dh, k);
      it->second = {k, std::vector<float>(m.L.begin(), m.L.end()), std::vector<float>(m.R.begin(), m.R.end())};
    }
    return &it->second;
  };
  auto make_config = [&](const std::string& method, const std::string& policy, double budget) {
    Config cfg{method, policy, budget, ranks_for(policy, budget), {}, {}, std::vector<double>(size_t(L) * H, 0.0)};
    for (size_t cell = 0; cell < cells; ++cell) cfg.maps.push_back(map_for(method, cell, cfg.ranks[cell]));
    return cfg;
  };
  std::vector<Config> configs;
  for (const auto& method : rq.methods)
    for (const auto& policy : rq.policies)
      for (double budget : rq.budgets) configs.push_back(make_config(method, policy, budget));

  // Evaluation: the original model once per window, then every configuration.
  double nll_orig = 0;
  long predicted = 0;
  const auto t_eval = Clock::now();
  const int steps = int(evaluation.size() * configs.size());
  std::vector<double> row, row_c;
  for (size_t w = 0; w < evaluation.size(); ++w) {
    const auto& ids = evaluation[w];
    const int n = int(ids.size());
    const std::vector<float> base = forward_logits(*model, ids);
    std::vector<double> logp(size_t(n) * V);
    std::vector<int> argmax(n);
    for (int i = 0; i < n; ++i) {
      log_softmax(&base[size_t(i) * V], V, row);
      std::copy(row.begin(), row.end(), logp.begin() + size_t(i) * V);
      argmax[i] = int(std::max_element(row.begin(), row.end()) - row.begin());
      if (i + 1 < n) nll_orig -= row[ids[i + 1]], ++predicted;
    }
    for (size_t ci = 0; ci < configs.size(); ++ci) {
      Config& cfg = configs[ci];
      const std::vector<float> logits = forward_logits(*model, ids, [&](const LayerActivations& a) {
        const long ldq = long(H) * dh, ldk = long(G) * dh;
        FirstException error;
#pragma omp parallel for schedule(dynamic)
        for (int g = 0; g < G; ++g) error.capture([&] {
          const FloatMap& m = *cfg.maps[size_t(a.layer) * G + g];
          const int k = m.k, n_tok = a.n;
          float* K = a.k + g * dh;
          std::vector<float> kp(size_t(n_tok) * k), qp(size_t(n_tok) * k);
          // kp = K R, qp = Q L ([n, d_h] x [d_h, k]; the maps are column-major d_h x k = row-major k x d_h).
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, k, dh, 1.0f, K, int(ldk), m.R.data(), dh, 0.0f,
                      kp.data(), k);
          for (int h = 0; h < H; ++h) {
            if (c.kv_head_of(h) != g) continue;
            float* Q = a.q + h * dh;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, k, dh, 1.0f, Q, int(ldq), m.L.data(), dh, 0.0f,
                        qp.data(), k);
            cfg.tv_sum[size_t(a.layer) * H + h] += attention_tv(Q, ldq, K, ldk, dh, qp.data(), kp.data(), k, n_tok,
                                                                c.softmax_scale[a.layer], c.sliding_window[a.layer],
                                                                c.attn_softcap);
            for (int i = 0; i < n_tok; ++i) {  // the head's query becomes [L^T q, 0 ...]
              std::copy_n(&qp[size_t(i) * k], k, Q + i * ldq);
              std::fill(Q + i * ldq + k, Q + i * ldq + dh, 0.0f);
            }
          }
          for (int i = 0; i < n_tok; ++i) {  // and its key [R^T k, 0 ...]: the same logits, s (L^T q).(R^T k)
            std::copy_n(&kp[size_t(i) * k], k, K + i * ldk);
            std::fill(K + i * ldk + k, K + i * ldk + dh, 0.0f);
          }
        });
        error.rethrow();
      });
      for (int i = 0; i < n; ++i) {
        log_softmax(&logits[size_t(i) * V], V, row_c);
        const double* lp = &logp[size_t(i) * V];
        double kl = 0;
        for (int v = 0; v < V; ++v) kl += std::exp(lp[v]) * (lp[v] - row_c[v]);
        cfg.kl.push_back(std::max(kl, 0.0));
        cfg.top1 += int(std::max_element(row_c.begin(), row_c.end()) - row_c.begin()) == argmax[i];
        if (i + 1 < n) cfg.nll -= row_c[ids[i + 1]], ++cfg.predicted;
      }
      cfg.tokens += n;
      ++cfg.tv_count;
      progress("evaluation", int(w * configs.size() + ci + 1), steps, t_eval);
    }
  }

  // Files.
  std::string curves = csv_header(compress_curve_columns()), heads = csv_header(compress_head_columns());
  nlohmann::json results = nlohmann::json::array();
  const double ppl_orig = std::exp(nll_orig / double(predicted));
  for (Config& cfg : configs) {
    std::sort(cfg.kl.begin(), cfg.kl.end());
    const size_t m = cfg.kl.size();
    const double tv_all = std::accumulate(cfg.tv_sum.begin(), cfg.tv_sum.end(), 0.0) / (double(L) * H * cfg.tv_count);
    const CompressCurveRow r{cfg.method, cfg.policy, cfg.budget,
                             std::accumulate(cfg.ranks.begin(), cfg.ranks.end(), 0L), long(cells) * dh, ppl_orig,
                             std::exp(cfg.nll / double(cfg.predicted)),
                             std::accumulate(cfg.kl.begin(), cfg.kl.end(), 0.0) / double(m),
                             m % 2 ? cfg.kl[m / 2] : 0.5 * (cfg.kl[m / 2 - 1] + cfg.kl[m / 2]), percentile(cfg.kl, 0.95),
                             percentile(cfg.kl, 0.99), cfg.kl.back(), cfg.top1 / double(cfg.tokens), tv_all};
    append_csv_row(curves, compress_curve_columns(), r);
    nlohmann::json j = nlohmann::json::object();
    for (const auto& col : compress_curve_columns()) j[col.name] = col.value(r);
    results.push_back(j);
    for (int l = 0; l < L; ++l)
      for (int g = 0; g < G; ++g) {
        const size_t cell = size_t(l) * G + g;
        const int k = cfg.ranks[cell];
        double kept = 0, all = 0;
        for (int i = 0; i < dh; ++i) (i < k ? kept : all) += spectra[cell][i] * spectra[cell][i];
        all += kept;
        double tv = 0;
        int group = 0;
        for (int h = 0; h < H; ++h)
          if (c.kv_head_of(h) == g) tv += cfg.tv_sum[size_t(l) * H + h], ++group;
        append_csv_row(heads, compress_head_columns(),
                       {cfg.method, cfg.policy, cfg.budget, l, g, dh, k, all > 0 ? kept / all : 1.0,
                        tv / (double(group) * cfg.tv_count)});
      }
  }
  nlohmann::json evaluated_ids = evaluation;
  nlohmann::json model_json = model_summary(rq.model, c);
  model_json["vocab_size"] = V;
  nlohmann::json summary = {
      {"attnspec_version", ATTNSPEC_VERSION},
      {"command", "compress"},
      {"model", model_json},
      {"ctx", rq.ctx},
      {"calibration", {{"inputs", calibration_inputs}, {"windows", calibration.size()}}},
      {"evaluation", {{"inputs", evaluation_inputs}, {"windows", evaluation.size()}}},
      {"methods", rq.methods},
      {"policies", rq.policies},
      {"budgets", rq.budgets},
      {"ppl_orig", ppl_orig},
      {"results", results},
      {"export", {{"method", rq.export_method}, {"policy", rq.export_policy}, {"budget", rq.export_budget}}},
      {"threads", thread_count()},
      {"conventions", compress_conventions()},
      {"timing_seconds", {{"total", std::chrono::duration<double>(Clock::now() - t_start).count()}}},
  };
  const Config exported = make_config(rq.export_method, rq.export_policy, rq.export_budget);
  std::error_code ec;
  std::filesystem::create_directories(rq.out, ec);
  if (ec || !std::filesystem::is_directory(rq.out)) throw input_error(rq.out.string(), "cannot create output folder");
  write_safetensors(rq.out / "projections.safetensors", exported, c,
                    {{"format", "attnspec query/key maps"},
                     {"method", rq.export_method},
                     {"policy", rq.export_policy},
                     {"budget", rq.export_budget},
                     {"model", rq.model.string()},
                     {"convention", compress_conventions()["logits"]}});
  write_file_atomically(rq.out / "evaluation_windows.json", evaluated_ids.dump() + "\n");
  write_file_atomically(rq.out / "compress_heads.csv", heads);
  write_file_atomically(rq.out / "compress_curves.csv", curves);
  write_file_atomically(rq.out / "compress.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace attnspec
