#include "attnspec/model/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>

#include "attnspec/model/forward.h"  // query_heads, key_heads, map_layer_weights

namespace attnspec {
namespace {

constexpr uintptr_t kPage = 4096;

// The whole pages that hold `t`'s bytes: [begin, begin + length).
struct PageRange {
  void* begin;
  size_t length;
};
PageRange pages_of(const TensorView& t) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(t.data), begin = first / kPage * kPage;
  return {reinterpret_cast<void*>(begin), size_t(first + t.nbytes - begin)};
}

// What may stay resident besides the activations: a quarter of the machine's memory (0 if unknown).
size_t resident_budget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? size_t(pages) * size_t(page_size) / 4 : 0;
}

// A checkpoint larger than the budget: its pages are not kept mapped.
bool large_checkpoint(const TensorStore& store) {
  const size_t budget = resident_budget();
  return budget > 0 && store.total_bytes() > budget;
}

// The float32 copies of every tensor not usable in place fit in the budget too: they are kept.
bool widened_copies_fit(const TensorStore& store) {
  size_t bytes = 0;
  for (const auto& [name, t] : store.tensors())
    if (!t.direct_float32()) bytes += size_t(t.numel()) * sizeof(float);
  return bytes <= resident_budget();
}

}  // namespace

void widen(const TensorView& t, float* out) {
  const size_t n = t.numel(), chunk = 1 << 16;
#pragma omp parallel for schedule(static)
  for (size_t first = 0; first < n; first += chunk) t.to_float32(out + first, first, std::min(chunk, n - first));
}

LayerWeights::LayerWeights(const TensorStore& store)
    : store_(store), release_pages_(large_checkpoint(store)), keep_(!release_pages_ && widened_copies_fit(store)) {}

LayerWeights::~LayerWeights() { release(); }

const float* LayerWeights::get(const std::string& name) {
  if (name.empty()) return nullptr;
  const TensorView& t = store_.at(name);
  touched_.push_back(&t);
  if (const float* direct = t.direct_float32()) return direct;
  if (keep_) {
    TensorStore::KeptFloat32& kept = store_.kept_float32();
    std::lock_guard lock(kept.mutex);
    auto& copy = kept.copies[name];
    if (!copy) {
      // Not zeroed first: widen() writes every element, its threads faulting the pages in side by
      // side (zeroing GBs on one thread tripled the first window's widening).
      copy = std::make_unique_for_overwrite<float[]>(t.numel());
      timed_widen(t, copy.get());
    }
    return copy.get();
  }
  auto it = widened_.find(name);
  if (it == widened_.end()) {
    std::vector<float> buf = take_spare(t.numel());
    timed_widen(t, buf.data());
    it = widened_.emplace(name, std::move(buf)).first;
  }
  return it->second.data();
}

void LayerWeights::timed_widen(const TensorView& t, float* out) {
  const auto t0 = std::chrono::steady_clock::now();
  widen(t, out);
  widen_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  widened_bytes_ += double(t.numel()) * sizeof(float);
}

void LayerWeights::release() {
  spare_.clear();  // whatever the last layer left and this one did not take
  for (auto& [name, buf] : widened_) spare_.push_back(std::move(buf));
  widened_.clear();
  if (release_pages_)
    for (const TensorView* t : touched_) {
      const PageRange r = pages_of(*t);
      ::madvise(r.begin, r.length, MADV_DONTNEED);
    }
  touched_.clear();
}

// A buffer of `count` floats for a widened tensor: the previous layer's of that size when there
// is one (layers share their shapes), so that each layer does not fault in and zero fresh pages
// (1.2 GB per Mistral-7B layer) before widening into them.
std::vector<float> LayerWeights::take_spare(size_t count) {
  for (auto it = spare_.begin(); it != spare_.end(); ++it)
    if (it->size() == count) {
      std::vector<float> buf = std::move(*it);
      spare_.erase(it);
      return buf;
    }
  return std::vector<float>(count);
}

void LayerWeights::map_layers(const Model& model, int last_layer) {
#ifdef MADV_POPULATE_READ
  if (large_checkpoint(*model.store)) return;
  std::vector<const TensorView*> tensors;
  for (int l = 0; l <= last_layer; ++l) {
    const LayerSpec& L = model.layers[l];
    for (const LinearSpec* s : {&L.q, &L.k, &L.v, &L.o, &L.up, &L.gate, &L.down})
      if (!s->weight.empty()) tensors.push_back(&model.store->at(s->weight));
  }
  // Split over the threads (the page-table work is per thread; the kernel lets them overlap).
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < tensors.size(); ++i) {
    const PageRange r = pages_of(*tensors[i]);
    ::madvise(r.begin, r.length, MADV_POPULATE_READ);  // best effort: an older kernel refuses, pages fault in as before
  }
#else
  (void)model, (void)last_layer;
#endif
}

void map_layer_weights(const Model& model, int last_layer) { LayerWeights::map_layers(model, last_layer); }

namespace {

// W_Q or W_K of `heads` heads of d_h rows each, read in the stored orientation (see ProjectionHeads).
ProjectionHeads projection_heads(const Model& model, const LinearSpec& s, int heads) {
  const TensorView& t = model.store->at(s.weight);
  const int64_t d = s.in, dh = model.config.head_dim, rows = int64_t(heads) * dh;
  ProjectionHeads p;
  p.head.resize(heads);
  const float* direct = t.direct_float32();
  if (s.in_out_layout) {  // [in, out_total]: input c is a row, the outputs are its columns
    const int64_t ld = t.shape[1];
    p.row_step = 1;
    if (direct) {
      p.col_step = ld;
      for (int h = 0; h < heads; ++h) p.head[h] = direct + s.col_offset + h * dh;
      return p;
    }
    p.col_step = rows;
    p.widened.resize(size_t(d * rows));
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d; ++c)
      t.to_float32(p.widened.data() + c * rows, size_t(c * ld + s.col_offset), size_t(rows));
  } else {  // [out, in]: each output row is contiguous over the inputs
    p.col_step = 1;
    p.row_step = d;
    // In place when each head's rows are stored consecutively (fused weights interleave heads).
    bool consecutive = direct != nullptr;
    for (int h = 0; h < heads && consecutive; ++h)
      consecutive = s.stored_row(h * dh + dh - 1) == s.stored_row(h * dh) + dh - 1;
    if (consecutive) {
      for (int h = 0; h < heads; ++h) p.head[h] = direct + s.stored_row(h * dh) * d;
      return p;
    }
    p.widened.resize(size_t(rows * d));
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < rows; ++j) t.to_float32(p.widened.data() + j * d, size_t(s.stored_row(j) * d), size_t(d));
  }
  for (int h = 0; h < heads; ++h) p.head[h] = p.widened.data() + h * dh * (s.in_out_layout ? 1 : d);
  return p;
}

}  // namespace

ProjectionHeads query_heads(const Model& model, int layer) {
  return projection_heads(model, model.layers[layer].q, model.config.n_heads);
}

ProjectionHeads key_heads(const Model& model, int layer) {
  return projection_heads(model, model.layers[layer].k, model.config.n_kv_heads);
}

}  // namespace attnspec
