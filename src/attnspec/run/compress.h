// `attnspec compress`: compression that deploys. Per layer and KV head, fixed rank-k query/key maps
// (spectra/subspace.h: pca, field, weights) are fitted on calibration windows; ranks are shared
// uniformly or by field energy for each budget (the share of key dimensions kept model-wide); then
// the model runs on held-out evaluation windows with every head's logits replaced by s (L^T q).(R^T k)
// (keys projected after RoPE, as a key cache would hold them) and is judged by its own next-token
// distribution: perplexity, KL(P_orig || P_comp) per token (mean, median, 95th / 99th percentile,
// max, as llama.cpp's --kl-divergence reports them), top-1 agreement, and attention TV per head.
//
// Files: compress_curves.csv (one row per method x policy x budget), compress_heads.csv (one row per
// configuration, layer and KV head), compress.json (inputs, conventions, results) and
// projections.safetensors (the maps of one configuration, --export-*).
#pragma once

#include <nlohmann/json.hpp>

#include "attnspec/run/request.h"

namespace attnspec {

// Throws InputError, before writing anything, on bad input: an encoder or a checkpoint without an
// LM head, a budget outside (0, 1], a text shorter than one window, evaluation windows that overlap
// the calibration text. Returns compress.json's content.
nlohmann::json run_compress(const Request& request);

}  // namespace attnspec
