// llama2.c checkpoints (Karpathy's run.c "legacy" format): seven int32 (dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means an unshared
// classifier follows), then float32 arrays, each per-layer one stacked over all layers:
// embedding [V, D], attention norms [L, D], wq [L, H*hd, D], wk, wv [L, G*hd, D], wo [L, D, H*hd],
// MLP norms [L, D], w1 [L, F, D], w2 [L, D, F], w3 [L, F, D], final norm [D], two RoPE tables
// [S, hd/2] (unused: the rotation is computed), and the classifier [V, D] when unshared.
// Every layer's tensor is a view of its slice of the stacked array.
#include <cstring>

#include "attnspec/common/error.h"
#include "attnspec/io/checkpoint_file.h"

namespace attnspec {

FileCheckpoint read_llama2c(std::unique_ptr<MappedFile> owned) {
  const MappedFile& file = *owned;
  const std::string where = file.path().string();
  constexpr size_t kHeader = 7 * 4;
  if (file.size() < kHeader)
    throw input_error(where, "truncated llama2.c checkpoint (" + std::to_string(file.size()) + " bytes, the header alone is 28)");
  int32_t h[7];
  std::memcpy(h, file.data(), kHeader);
  const int64_t D = h[0], F = h[1], L = h[2], H = h[3], G = h[4], S = h[6];
  const bool shared = h[5] > 0;
  const int64_t V = h[5] < 0 ? -int64_t(h[5]) : h[5];
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int64_t values[] = {D, F, L, H, G, V, S};
  for (int i = 0; i < 7; ++i)
    if (values[i] <= 0 || values[i] > (1 << 24))
      throw input_error(where, std::string("llama2.c header field ") + names[i] + " = " + std::to_string(h[i]) +
                                   " is not a plausible size (not a llama2.c checkpoint?)");
  if (D % H != 0 || H % G != 0 || (D / H) % 2 != 0)
    throw input_error(where, "llama2.c header: dim " + std::to_string(D) + ", n_heads " + std::to_string(H) + ", n_kv_heads " +
                                 std::to_string(G) + " do not give whole, even heads shared evenly");
  const int64_t hd = D / H, kvd = G * hd;
  // Each factor is below 2^24, so every product below fits in 128 bits; the sum is checked
  // against the file size before anything is addressed.
  using u128 = unsigned __int128;
  struct Array { const char* what; u128 floats; };
  const Array arrays[] = {
      {"embedding", u128(V * D)}, {"attention norms", u128(L * D)}, {"wq", u128(L) * u128(D * D)},
      {"wk", u128(L) * u128(kvd * D)}, {"wv", u128(L) * u128(kvd * D)}, {"wo", u128(L) * u128(D * D)},
      {"mlp norms", u128(L * D)}, {"w1", u128(L) * u128(F * D)}, {"w2", u128(L) * u128(F * D)},
      {"w3", u128(L) * u128(F * D)}, {"final norm", u128(D)}, {"rope cos", u128(S * (hd / 2))},
      {"rope sin", u128(S * (hd / 2))}, {"classifier", shared ? 0 : u128(V * D)}};
  u128 total = 0;
  for (const Array& a : arrays) total += a.floats;
  const u128 expect = kHeader + total * 4;
  if (expect != file.size())
    throw input_error(where, "llama2.c header (dim " + std::to_string(D) + ", layers " + std::to_string(L) + ", vocab " +
                                 std::to_string(h[5]) + ", ...) implies " + (expect >> 63 ? std::string("over 2^63") : std::to_string(static_cast<uint64_t>(expect))) + " bytes but the file has " +
                                 std::to_string(file.size()));

  FileCheckpoint ck;
  ck.format = "llama2.c";
  ck.store = std::make_unique<TensorStore>();
  const MappedFile& kept = ck.store->adopt(std::move(owned));
  const std::byte* p = kept.data() + kHeader;
  uint64_t offset = 0;  // in floats
  auto next_array = [&](int i) {
    const uint64_t at = offset;
    offset += uint64_t(arrays[i].floats);
    return p + at * 4;
  };
  auto add = [&](const std::string& name, const std::byte* base, int64_t index, std::vector<int64_t> shape,
                 std::shared_ptr<const std::vector<int64_t>> perm = nullptr) {
    TensorView t;
    t.name = name;
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    t.nbytes = size_t(t.numel()) * 4;
    t.data = base + size_t(index) * t.nbytes;
    t.file = &kept;
    t.row_perm = std::move(perm);
    ck.store->add_view(std::move(t));
  };
  const std::byte* embed = next_array(0);
  const std::byte* attn_norm = next_array(1);
  const std::byte* wq = next_array(2);
  const std::byte* wk = next_array(3);
  const std::byte* wv = next_array(4);
  const std::byte* wo = next_array(5);
  const std::byte* mlp_norm = next_array(6);
  const std::byte* w1 = next_array(7);
  const std::byte* w2 = next_array(8);
  const std::byte* w3 = next_array(9);
  const std::byte* final_norm = next_array(10);
  next_array(11);
  next_array(12);
  const std::byte* classifier = next_array(13);

  add("model.embed_tokens.weight", embed, 0, {V, D});
  add("model.norm.weight", final_norm, 0, {D});
  if (!shared) add("lm_head.weight", classifier, 0, {V, D});
  const auto q_perm = rotate_half_rows(H, hd), k_perm = rotate_half_rows(G, hd);
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    add(pre + "input_layernorm.weight", attn_norm, l, {D});
    add(pre + "post_attention_layernorm.weight", mlp_norm, l, {D});
    add(pre + "self_attn.q_proj.weight", wq, l, {D, D}, q_perm);
    add(pre + "self_attn.k_proj.weight", wk, l, {kvd, D}, k_perm);
    add(pre + "self_attn.v_proj.weight", wv, l, {kvd, D});
    add(pre + "self_attn.o_proj.weight", wo, l, {D, D});
    add(pre + "mlp.gate_proj.weight", w1, l, {F, D});
    add(pre + "mlp.down_proj.weight", w2, l, {D, F});
    add(pre + "mlp.up_proj.weight", w3, l, {F, D});
  }
  // run.c's fixed settings: RMSNorm eps 1e-5, RoPE theta 10000, SwiGLU, scale 1/sqrt(hd).
  ck.config = {{"model_type", "llama"},          {"architectures", {"LlamaForCausalLM"}},
               {"hidden_size", D},               {"intermediate_size", F},
               {"num_hidden_layers", L},         {"num_attention_heads", H},
               {"num_key_value_heads", G},       {"head_dim", hd},
               {"vocab_size", V},                {"max_position_embeddings", S},
               {"rms_norm_eps", 1e-5},           {"rope_theta", 10000.0},
               {"hidden_act", "silu"},           {"tie_word_embeddings", shared},
               {"bos_token_id", 1},              {"eos_token_id", 2}};
  return ck;
}

FileCheckpoint open_llama2c(const std::filesystem::path& path) { return read_llama2c(std::make_unique<MappedFile>(path)); }

}  // namespace attnspec
