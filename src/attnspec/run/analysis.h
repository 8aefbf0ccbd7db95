// The analysis of one window: the forward pass hands each layer's Q and K to the exact spectra,
// head by head. The W_Q^T W_K spectra depend only on the model and are computed once per run.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/extras.h"
#include "attnspec/spectra/metrics.h"

namespace attnspec {

struct HeadSpectrum {
  std::vector<double> sigma;  // descending
  SpectrumSummary summary;
};

// W_Q^(h)T W_K^(g) per (layer, query head), for layers 0..last_layer.
struct WeightSpectra {
  int n_heads = 0;
  std::vector<HeadSpectrum> heads;  // index layer * n_heads + head
  const HeadSpectrum& at(int layer, int head) const { return heads[size_t(layer) * n_heads + head]; }
};

WeightSpectra compute_weight_spectra(const Model& model, int last_layer);

struct HeadResult {
  int layer = 0, head = 0, kv_head = 0;
  HeadSpectrum field;  // E~, singular values already multiplied by the softmax scale s
  HeadExtras extras;   // what AnalysisOptions asked for beyond E~ (extras.h)
  // Soft-capped models only (capped.h): the capped field, unmasked (always) and causal (with
  // --field causal|both); all n singular values each.
  HeadSpectrum field_capped, causal_capped;
};

struct WindowResult {
  int window = 0;
  int n = 0;
  std::vector<HeadResult> heads;  // ordered by (layer, head)
  AnalysisOptions options;        // what was computed beyond E~
  std::vector<LayerExtras> layers;  // --data-side: per layer, ordered
  ForwardTimes forward_times;
  double spectra_seconds = 0;
};

// Runs one window through layers 0..last_layer and computes every head's field spectrum.
WindowResult analyze_window(const Model& model, std::span<const int32_t> ids, int window_index, int last_layer,
                            const AnalysisOptions& options = {},
                            const std::function<void(int layer)>& on_layer_done = {});

}  // namespace attnspec
