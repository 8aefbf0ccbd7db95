// What of a checkpoint is in memory, and when. Every tensor stays memory-mapped in the dtype it is
// stored in (F32, F16, BF16, GGUF's quantized blocks; io/ reads each as float32). The forward pass
// asks for a layer's tensors by name as it reaches them: a tensor that is aligned float32 is used
// in place, any other is widened into a float32 copy on first use. When the layer is done, the
// copies are freed (their buffers kept for the next layer, which has the same shapes) and, for a
// checkpoint that is large next to the machine's memory, the layer's mapped pages are handed back
// to the OS. So resident memory stays near one layer's float32 weights plus the activations.
// Except when the float32 copies of every widened tensor together fit in a quarter of the
// machine's memory (a 1B model in F16 or Q8_0 on a 16 GB laptop): then each copy is kept in the
// store and reused by every later window, so a run widens its weights once, not once per window.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "attnspec/io/safetensors.h"
#include "attnspec/model/model.h"

namespace attnspec {

// `t` widened to float32 into out[t.numel()], split over the threads (a 7B layer is hundreds of MB).
void widen(const TensorView& t, float* out);

// One layer's weights as float32, widened on first use and kept until release().
class LayerWeights {
 public:
  explicit LayerWeights(const TensorStore& store);
  ~LayerWeights();
  LayerWeights(const LayerWeights&) = delete;
  LayerWeights& operator=(const LayerWeights&) = delete;

  // The tensor `name` as float32 (null for an empty name: an absent bias or norm weight), valid
  // until release().
  const float* get(const std::string& name);
  // Done with this layer: free the widened copies and, for a large checkpoint, the mapped pages
  // of every tensor get() returned (re-read from the page cache, or the disk, when needed again).
  void release();

  // Seconds spent widening so far (run_layers books them apart from the products that asked).
  double widen_seconds() const { return widen_seconds_; }
  double widened_bytes() const { return widened_bytes_; }  // of the float32 copies made so far

  // For a checkpoint that is small next to the machine's memory (whose pages stay mapped): maps
  // the pages of layers 0..last_layer's projections in one call per tensor, as llama.cpp's
  // MAP_POPULATE does, instead of one page fault per 16 pages on first touch. No-op otherwise.
  static void map_layers(const Model& model, int last_layer);

 private:
  std::vector<float> take_spare(size_t count);
  void timed_widen(const TensorView& t, float* out);  // widen(), booked to widen_seconds_ and widened_bytes_
  const TensorStore& store_;
  bool release_pages_;
  bool keep_;  // widened copies go to (and come from) store_.kept_float32()
  std::map<std::string, std::vector<float>> widened_;
  std::vector<std::vector<float>> spare_;  // the last layer's widened buffers, for the next
  std::vector<const TensorView*> touched_;
  double widen_seconds_ = 0, widened_bytes_ = 0;
};

}  // namespace attnspec
