// What a run reads besides the model: token ids from a file, and the cutting of a token stream
// into windows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/model/model.h"
#include "attnspec/run/request.h"

namespace attnspec {

// A JSON array of integers, or integers separated by white space or commas. Throws InputError
// naming the file and the offending token on anything else (and on an empty file).
std::vector<int32_t> read_token_ids(const std::filesystem::path& path);

struct Windows {
  std::vector<std::vector<int32_t>> windows;  // each exactly ctx tokens
  size_t stream_tokens = 0;   // tokens in the stream
  size_t dropped_tokens = 0;  // stream tokens after the last full window (or beyond max_windows)
};

// Cuts `stream` into consecutive, non-overlapping windows of `ctx` tokens. Each window is
// prefix + (ctx - |prefix| - |suffix|) stream tokens + suffix, so a BOS the tokenizer's
// post-processor adds is part of every window. max_windows <= 0 means all. Throws InputError when
// not even one window fits.
Windows cut_windows(std::span<const int32_t> stream, int ctx, const std::vector<int32_t>& prefix,
                    const std::vector<int32_t>& suffix, int max_windows, const std::string& source);

struct PreparedInput {
  Windows windows;
  nlohmann::json description;  // for summary.json and the --resume fingerprint
};

// Reads, tokenizes and cuts the request's input (text or token_ids, tokenizer, ctx, max_windows,
// strip_gutenberg) without a model to check it against (the torch engine checks against its own).
PreparedInput read_input(const Request& source);

// Reads, tokenizes and cuts the request's input (model, text or token_ids, tokenizer, ctx,
// max_windows, strip_gutenberg, allow_long_context), checking it against the model: ctx within the model's
// positions (or --allow-long-context for rotary models), every id inside the vocabulary. Throws
// InputError naming the file at fault; writes nothing.
PreparedInput prepare_input(const Request& source, const ModelConfig& config);

}  // namespace attnspec
