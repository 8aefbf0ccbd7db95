#include "attnspec/run/outputs.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "attnspec/common/error.h"

namespace attnspec {
namespace {

std::string fmt(double v) {
  if (!std::isfinite(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// k90(M) / k90(E~) and erank(M) / erank(E~): how many more dimensions the weights use than the
// data-driven field. NaN when the field is zero.
double ratio(double num, double den) { return den > 0 ? num / den : std::nan(""); }

nlohmann::json stats(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return {{"min", nullptr}, {"median", nullptr}, {"max", nullptr}, {"count", 0}};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {{"min", v.front()}, {"median", median}, {"max", v.back()}, {"count", n}};
}

void write_or_throw(std::FILE* f, const std::string& s, const std::filesystem::path& path) {
  if (std::fwrite(s.data(), 1, s.size(), f) != s.size()) throw std::runtime_error(path.string() + ": write failed");
}

}  // namespace

nlohmann::json conventions_json() {
  return {
      {"field", "E~ = s * Q_h (K_g - mean_j K_g)^T: row-centred logits over all n keys, no causal mask; "
                "q, k after projection bias, q/k-norm and RoPE; s = the model's softmax scale; "
                "singular values include s; exact O(n d_h^2) QR reduction in float64"},
      {"weights", "M = W_Q^(h)T W_K^(g) in the convention y = W x (W_Q^(h) is the d_h x d block of head h); "
                  "no bias, norm, RoPE or scale; exact QR reduction in float64"},
      {"kv_head", "g = h / (H / G), as Hugging Face repeat_kv maps grouped-query heads"},
      {"k_tau", "smallest k with sum_{i<=k} sigma_i^2 / sum_i sigma_i^2 >= tau (variance = squared Frobenius norm)"},
      {"erank", "Roy & Vetterli 2007: exp(-sum p_i ln p_i), p_i = sigma_i / sum_j sigma_j"},
      {"participation_ratio", "(sum sigma_i^2)^2 / sum sigma_i^4"},
      {"stable_rank", "sum sigma_i^2 / sigma_1^2"},
      {"gap_k90", "k90_weights / k90_field"},
      {"gap_erank", "erank_weights / erank_field"},
      {"windows", "consecutive non-overlapping windows of ctx tokens; the tokenizer's post-processor tokens "
                  "(e.g. BOS) start every window when the input is text; token ids are used as given"},
      {"indexing", "windows, layers and heads count from 0"},
  };
}

std::string heads_csv_header() {
  std::string h = "window,layer,head,kv_head,n,k90_field,k90_weights,erank_field,erank_weights";
  for (const char* obj : {"field", "weights"}) {
    for (double tau : kTaus)
      if (tau != 0.9) h += ",k" + std::to_string(int(std::lround(tau * 100))) + "_" + obj;
    h += std::string(",participation_ratio_") + obj + ",stable_rank_" + obj + ",sigma1_" + obj;
  }
  return h + ",gap_k90,gap_erank\n";
}

std::string heads_csv_rows(const WindowResult& w, const WeightSpectra& weights) {
  std::string out;
  for (const HeadResult& r : w.heads) {
    const HeadSpectrum& m = weights.at(r.layer, r.head);
    const SpectrumSummary &f = r.field.summary, &ws = m.summary;
    out += std::to_string(w.window) + "," + std::to_string(r.layer) + "," + std::to_string(r.head) + "," +
           std::to_string(r.kv_head) + "," + std::to_string(w.n) + "," + std::to_string(f.k90()) + "," +
           std::to_string(ws.k90()) + "," + fmt(f.effective_rank) + "," + fmt(ws.effective_rank);
    for (const HeadSpectrum* s : {&r.field, &m}) {
      for (size_t t = 0; t < kTaus.size(); ++t)
        if (kTaus[t] != 0.9) out += "," + std::to_string(s->summary.k_tau[t]);
      out += "," + fmt(s->summary.participation_ratio) + "," + fmt(s->summary.stable_rank) + "," +
             fmt(s->sigma.empty() ? 0.0 : s->sigma[0]);
    }
    out += "," + fmt(ratio(ws.k90(), f.k90())) + "," + fmt(ratio(ws.effective_rank, f.effective_rank)) + "\n";
  }
  return out;
}

std::string spectra_jsonl_rows(const WindowResult& w, const WeightSpectra& weights) {
  std::string out;
  for (const HeadResult& r : w.heads) {
    nlohmann::json j = {{"window", w.window}, {"layer", r.layer}, {"head", r.head}, {"kv_head", r.kv_head},
                        {"field", r.field.sigma}, {"weights", weights.at(r.layer, r.head).sigma}};
    out += j.dump() + "\n";
  }
  return out;
}

void Aggregates::add(const WindowResult& w, const WeightSpectra& weights) {
  for (const HeadResult& r : w.heads) {
    const SpectrumSummary &f = r.field.summary, &m = weights.at(r.layer, r.head).summary;
    k90_field_.push_back(f.k90());
    k90_weights_.push_back(m.k90());
    erank_field_.push_back(f.effective_rank);
    erank_weights_.push_back(m.effective_rank);
    gap_k90_.push_back(ratio(m.k90(), f.k90()));
    gap_erank_.push_back(ratio(m.effective_rank, f.effective_rank));
  }
}

nlohmann::json Aggregates::to_json() const {
  return {{"k90_field", stats(k90_field_)},     {"k90_weights", stats(k90_weights_)},
          {"erank_field", stats(erank_field_)}, {"erank_weights", stats(erank_weights_)},
          {"gap_k90", stats(gap_k90_)},         {"gap_erank", stats(gap_erank_)}};
}

OutputWriter::OutputWriter(const std::filesystem::path& dir, bool save_spectra) : dir_(dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) throw input_error(dir.string(), "cannot create output folder");
  const std::string tag = ".partial-" + std::to_string(::getpid());
  heads_tmp_ = dir / ("heads.csv" + tag);
  heads_ = std::fopen(heads_tmp_.c_str(), "wb");
  if (!heads_) throw input_error(dir.string(), "output folder is not writable");
  write_or_throw(heads_, heads_csv_header(), heads_tmp_);
  if (save_spectra) {
    spectra_tmp_ = dir / ("spectra.jsonl" + tag);
    spectra_ = std::fopen(spectra_tmp_.c_str(), "wb");
    if (!spectra_) throw input_error(dir.string(), "output folder is not writable");
  }
}

OutputWriter::~OutputWriter() {
  if (heads_) std::fclose(heads_);
  if (spectra_) std::fclose(spectra_);
  if (!committed_) {
    std::error_code ec;
    std::filesystem::remove(heads_tmp_, ec);
    if (!spectra_tmp_.empty()) std::filesystem::remove(spectra_tmp_, ec);
  }
}

void OutputWriter::add_window(const WindowResult& w, const WeightSpectra& weights) {
  write_or_throw(heads_, heads_csv_rows(w, weights), heads_tmp_);
  if (spectra_) write_or_throw(spectra_, spectra_jsonl_rows(w, weights), spectra_tmp_);
}

void OutputWriter::commit(const nlohmann::json& summary) {
  const auto summary_tmp = dir_ / ("summary.json.partial-" + std::to_string(::getpid()));
  {
    std::ofstream out(summary_tmp);
    out << summary.dump(2) << "\n";
    if (!out) throw std::runtime_error(summary_tmp.string() + ": write failed");
  }
  for (std::FILE** f : {&heads_, &spectra_})
    if (*f) {
      if (std::fflush(*f) != 0 || ::fsync(fileno(*f)) != 0) throw std::runtime_error("flushing results failed");
      std::fclose(*f);
      *f = nullptr;
    }
  std::filesystem::rename(heads_tmp_, dir_ / "heads.csv");
  if (!spectra_tmp_.empty()) std::filesystem::rename(spectra_tmp_, dir_ / "spectra.jsonl");
  std::filesystem::rename(summary_tmp, dir_ / "summary.json");
  committed_ = true;
}

}  // namespace attnspec
