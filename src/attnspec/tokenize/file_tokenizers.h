// Tokenizers that live inside one-file checkpoints or beside them: llama2.c's tok*.bin and the
// tokenizer a GGUF file carries in its metadata.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attnspec/tokenize/added_tokens.h"
#include "attnspec/tokenize/score_merge.h"

#include "attnspec/tokenize/tokenizer.h"

namespace attnspec {

// llama2.c's tokenizer file: int32 max_token_length, then per token float32 score, int32 byte
// length and the bytes. Encoded as run.c does: dummy-prefix space, score merges, BOS = 1.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path);
// From the same bytes in memory (for tests and fuzzing); `where` names them in errors.
std::unique_ptr<Tokenizer> parse_llama2c_tokenizer(const std::byte* data, size_t size, const std::string& where);

struct GgufTokenizerData;  // io/gguf.h

// The tokenizer in a GGUF file's metadata (tokenizer.ggml.*).
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path);
// The same from metadata already read (io/gguf.h's read_gguf_tokenizer); `where` names the file.
// Throws InputError for a pre-tokenizer (tokenizer.ggml.pre) attnspec does not implement.
std::unique_ptr<Tokenizer> make_gguf_tokenizer(GgufTokenizerData data, const std::string& where);

// A Tokenizer around a score-merge encoder, with the special tokens put around every sequence and
// `added` tokens matched in the raw text before the encoder sees it.
std::unique_ptr<Tokenizer> make_score_merge_tokenizer(ScoreMergeEncoder encoder, std::vector<int32_t> prefix,
                                                      std::vector<int32_t> suffix, std::string description,
                                                      std::vector<AddedToken> added = {});
// A byte-level BPE pipeline from a tokenizer.json object built in memory (tokenizer.cpp).
std::unique_ptr<Tokenizer> bpe_tokenizer_from_json(const nlohmann::json& tokenizer_json, const std::string& where,
                                                   std::vector<int32_t> prefix, std::vector<int32_t> suffix,
                                                   const std::string& description);

// For a file given as --model or --tokenizer: a GGUF file, a llama2.c tok*.bin, or a llama2.c
// checkpoint whose folder holds exactly one tok*.bin. Throws InputError when none applies.
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::filesystem::path& path);

}  // namespace attnspec
