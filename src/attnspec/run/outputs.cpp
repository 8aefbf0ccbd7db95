#include "attnspec/run/outputs.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include "attnspec/common/error.h"
#include "attnspec/run/columns.h"

namespace attnspec {
namespace {

nlohmann::json stats(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return {{"min", nullptr}, {"median", nullptr}, {"max", nullptr}, {"count", 0}};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {{"min", v.front()}, {"median", median}, {"max", v.back()}, {"count", n}};
}

}  // namespace

nlohmann::json model_summary(const std::filesystem::path& path, const ModelConfig& c) {
  return {{"path", path.string()},
          {"family", c.family},
          {"layers", c.n_layers},
          {"heads", c.n_heads},
          {"kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"softmax_scale", c.softmax_scale},
          {"sliding_window", c.sliding_window},
          {"attention", c.causal ? "causal" : "bidirectional"}};
}

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
                  "(e.g. BOS, or BERT's [CLS] ... [SEP]) start and end every window when the input is text; token "
                  "ids are used as given"},
      {"indexing", "windows, layers and heads count from 0"},
  };
}

std::string heads_csv_header(const AnalysisOptions& options) { return csv_header(heads_columns(), &options); }

std::string heads_csv_rows(const WindowResult& w, const WeightSpectra& weights) {
  std::string out;
  for (const HeadResult& r : w.heads)
    append_csv_row(out, heads_columns(), {w, r, weights.at(r.layer, r.head)}, &w.options);
  return out;
}

std::string spectra_jsonl_rows(const WindowResult& w, const WeightSpectra& weights) {
  std::string out;
  for (const HeadResult& r : w.heads)
    out += json_row(spectra_fields(), {w, r, weights.at(r.layer, r.head)}, &w.options).dump() + "\n";
  return out;
}

nlohmann::json aggregates_from_csv(const std::string& heads_csv) {
  // Columns by name, so that the aggregates follow the header whatever columns come later.
  std::vector<std::vector<double>> cols;
  std::vector<std::string> names;
  std::vector<bool> always;  // the others are reported only when present
  for (const auto& c : heads_columns())
    if (c.aggregated) {
      names.push_back(c.name);
      always.push_back(c.added_by == AddedBy::Always);
    }
  std::vector<int> index(names.size(), -1);
  size_t pos = 0;
  bool header = true;
  cols.resize(names.size());
  while (pos < heads_csv.size()) {
    size_t end = heads_csv.find('\n', pos);
    if (end == std::string::npos) end = heads_csv.size();
    std::vector<std::string> fields;
    size_t a = pos;
    while (a <= end) {
      size_t b = heads_csv.find(',', a);
      if (b == std::string::npos || b > end) b = end;
      fields.emplace_back(heads_csv.substr(a, b - a));
      a = b + 1;
    }
    if (header) {
      for (size_t i = 0; i < names.size(); ++i)
        for (size_t f = 0; f < fields.size(); ++f)
          if (fields[f] == names[i]) index[i] = static_cast<int>(f);
      header = false;
    } else if (!fields.empty() && !(fields.size() == 1 && fields[0].empty())) {
      for (size_t i = 0; i < names.size(); ++i)
        if (index[i] >= 0 && index[i] < static_cast<int>(fields.size()))
          cols[i].push_back(fields[index[i]] == "nan" ? std::nan("") : std::stod(fields[index[i]]));
    }
    pos = end + 1;
  }
  nlohmann::json out;
  for (size_t i = 0; i < names.size(); ++i)
    if (always[i] || index[i] >= 0) out[names[i]] = stats(cols[i]);
  return out;
}

void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
  const auto tmp = path.parent_path() / ("." + path.filename().string() + ".partial-" + std::to_string(::getpid()));
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw input_error(path.parent_path().string(), "output folder is not writable");
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() && std::fflush(f) == 0 &&
                  ::fsync(fileno(f)) == 0;
  std::fclose(f);
  if (!ok) {
    std::filesystem::remove(tmp);
    throw std::runtime_error(path.string() + ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

namespace {

std::string window_name(int window, const char* ext) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "window-%06d.%s", window, ext);
  return buf;
}

std::string read_whole(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

RunDirectory::RunDirectory(const std::filesystem::path& dir, const nlohmann::json& fingerprint, bool save_spectra,
                           bool resume)
    : dir_(dir), state_(dir / ".attnspec-run"), save_spectra_(save_spectra) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir)) {
    fs::create_directories(dir, ec);
    created_dir_ = !ec;
  }
  if (ec || !fs::is_directory(dir)) throw input_error(dir.string(), "cannot create output folder");
  const auto fp_path = state_ / "run.json";
  if (fs::exists(state_)) {
    if (!resume)
      throw input_error(dir.string(), "holds an unfinished run (" + state_.string() +
                                          "); pass --resume to continue it, or remove that folder");
    nlohmann::json old;
    try {
      old = nlohmann::json::parse(read_whole(fp_path));
    } catch (const std::exception&) {
      throw input_error(fp_path.string(), "unreadable run state; remove " + state_.string() + " to start afresh");
    }
    if (old != fingerprint) {
      std::string diff;
      for (auto& [k, v] : fingerprint.items())
        if (!old.contains(k) || old[k] != v) diff += (diff.empty() ? "" : ", ") + k;
      throw input_error(dir.string(), "cannot resume: the unfinished run was made with different " + diff);
    }
    // A window counts as done only when all its files are there (each was renamed into place).
    for (const auto& e : fs::directory_iterator(state_))
      if (e.path().filename().string().find(".partial-") != std::string::npos) fs::remove(e.path(), ec);
  } else {
    fs::create_directories(state_, ec);
    if (ec) throw input_error(dir.string(), "output folder is not writable");
    write_file_atomically(fp_path, fingerprint.dump(2) + "\n");
  }
}

RunDirectory::~RunDirectory() {
  if (finished_ || keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(state_, ec);
  if (created_dir_) std::filesystem::remove(dir_, ec);  // only if empty
}

bool RunDirectory::window_done(int window) const {
  return std::filesystem::exists(state_ / window_name(window, "csv")) &&
         (!save_spectra_ || std::filesystem::exists(state_ / window_name(window, "jsonl"))) &&
         (!options_.data_side || std::filesystem::exists(state_ / window_name(window, "layers.csv")));
}

void RunDirectory::add_window(const WindowResult& w, const WeightSpectra& weights) {
  // The spectra file first: the csv's presence is what marks the window as done.
  if (save_spectra_) write_file_atomically(state_ / window_name(w.window, "jsonl"), spectra_jsonl_rows(w, weights));
  if (options_.data_side) {
    if (save_spectra_) write_file_atomically(state_ / window_name(w.window, "layers.jsonl"), layers_jsonl_rows(w));
    write_file_atomically(state_ / window_name(w.window, "layers.csv"), layers_csv_rows(w));
  }
  write_file_atomically(state_ / window_name(w.window, "csv"), heads_csv_rows(w, weights));
}

std::string write_run_files(const std::filesystem::path& dir, const AnalysisOptions& options, bool save_spectra,
                            const RunRows& rows,
                            const std::function<nlohmann::json(const std::string& heads_csv)>& summary) {
  const std::string heads = heads_csv_header(options) + rows.heads;
  write_file_atomically(dir / "heads.csv", heads);
  write_file_atomically(dir / "head_summary.csv", head_summary_csv(heads));
  // Files of options not requested this time are removed: a stale one from an earlier run would mislead.
  if (options.data_side) write_file_atomically(dir / "layers.csv", layers_csv_header() + rows.layers);
  else std::filesystem::remove(dir / "layers.csv");
  if (options.data_side && save_spectra) write_file_atomically(dir / "layers.jsonl", rows.layer_spectra);
  else std::filesystem::remove(dir / "layers.jsonl");
  if (save_spectra) write_file_atomically(dir / "spectra.jsonl", rows.spectra);
  else std::filesystem::remove(dir / "spectra.jsonl");
  write_file_atomically(dir / "summary.json", summary(heads).dump(2) + "\n");
  return heads;
}

std::string RunDirectory::finish(int windows, const std::function<nlohmann::json(const std::string&)>& summary) {
  RunRows rows;
  for (int w = 0; w < windows; ++w) {
    rows.heads += read_whole(state_ / window_name(w, "csv"));
    if (save_spectra_) rows.spectra += read_whole(state_ / window_name(w, "jsonl"));
    if (options_.data_side) rows.layers += read_whole(state_ / window_name(w, "layers.csv"));
    if (options_.data_side && save_spectra_) rows.layer_spectra += read_whole(state_ / window_name(w, "layers.jsonl"));
  }
  std::string heads = write_run_files(dir_, options_, save_spectra_, rows, summary);
  finished_ = true;
  std::error_code ec;
  std::filesystem::remove_all(state_, ec);
  return heads;
}

}  // namespace attnspec
