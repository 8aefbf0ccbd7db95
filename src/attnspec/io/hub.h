// Hugging Face hub ids ("gpt2", "meta-llama/Llama-3.2-1B") given where a checkpoint folder is
// expected: resolved through the local hub cache that huggingface_hub maintains.
#pragma once

#include <filesystem>
#include <string>

namespace attnspec {

// True for strings shaped like a hub id: "name" or "org/name" of [A-Za-z0-9._-], not a path that
// exists.
bool looks_like_hub_id(const std::string& s);

// The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
// else ~/.cache/huggingface/hub.
std::filesystem::path hub_cache_dir();

// The cached snapshot folder of `repo_id` at `revision` (a branch in refs/ or a commit hash), or an
// empty path when the cache does not hold it (with a config.json).
std::filesystem::path find_in_hub_cache(const std::string& repo_id, const std::string& revision = "main");

// The folder or file `--model` names: `arg` itself when it exists or is not shaped like a hub id;
// else the cached snapshot of the id; else, unless HF_HUB_OFFLINE is set, the files attnspec reads
// (config and tokenizer JSON, *.safetensors, *.txt, tokenizer.model) downloaded from the hub
// ($HF_ENDPOINT, default https://huggingface.co; $HF_TOKEN for gated models) into the cache in
// huggingface_hub's layout. InputError saying how to get the files when none of that works.
std::filesystem::path resolve_model(const std::string& arg);

}  // namespace attnspec
