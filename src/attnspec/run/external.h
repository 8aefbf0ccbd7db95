// The spectra of activations attnspec did not compute itself: queries and keys captured from another
// forward pass (the torch engine, python/attnspec/torch.py, captures them where a PyTorch model's
// attention consumes them). What crosses is small and per layer: the float64 Gram matrices Q_h^T Q_h
// and Kc_g^T Kc_g of every head (d_h x d_h, Kc = keys centred over positions; METRICS.md's exact
// reduction starts from them exactly as row_factor does), and, only when the causal or the
// soft-capped field is asked for, the layer's Q and K themselves. The heads come back as the
// HeadResults the native engine makes, so the run's files are written by the same row writers.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/run/analysis.h"
#include "attnspec/run/extras.h"

namespace attnspec {

struct ExternalLayer {
  int layer = 0, n = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  const double* q_gram = nullptr;  // [H, d_h, d_h] (symmetric): Q_h^T Q_h
  const double* k_gram = nullptr;  // [G, d_h, d_h]: Kc_g^T Kc_g
  double scale = 0;                // the softmax scale the attention was given
  int window = 0;                  // sliding window (0: none), for the causal field
  double softcap = 0;              // attention-logit soft-cap (0: none)
  const float* q = nullptr;        // [H, n, d_h], needed for the causal / capped fields only
  const float* k = nullptr;        // [G, n, d_h]
};

// Every head's field spectrum (and the extras `options` asks for) of one layer, ordered by head.
// InputError when a Gram matrix is not finite (NaN or Inf in the activations).
std::vector<HeadResult> external_layer_heads(const ExternalLayer& layer, const AnalysisOptions& options);

// The singular values of W_Q^(h)T W_K^(g) from the Gram matrices W_Q^(h) W_Q^(h)T and
// W_K^(g) W_K^(g)T (d_h x d_h each, of d-column blocks).
std::vector<double> external_weight_spectrum(const double* q_gram, const double* k_gram, int d, int dh);

// A head whose W_Q^T W_K is not one d x d_h by d_h x d product (a low-rank latent attention): NaN
// summaries and no values, written as nan in heads.csv and [] in spectra.jsonl.
HeadSpectrum undefined_spectrum();

// Writes the run's files into `dir` from its rows (heads.csv and spectra.jsonl rows in window
// order, as heads_csv_rows / spectra_jsonl_rows make them) with `summary` completed by the options,
// the conventions and the aggregates; returns summary.json's content.
nlohmann::json write_external_run(const std::filesystem::path& dir, const AnalysisOptions& options, bool save_spectra,
                                  const std::string& heads_rows, const std::string& spectra_rows,
                                  nlohmann::json summary);

}  // namespace attnspec
