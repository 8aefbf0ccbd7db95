// `attnspec analyze --profile`: where a run's time went, stage by stage, and how close each matrix
// stage came to the machine's own sgemm rate (the ceiling of a float32 forward on this BLAS).
#pragma once

#include <string>

#include "attnspec/model/forward.h"

namespace attnspec {

struct RunProfile {
  int threads = 0;
  int windows = 0;            // computed in this run (not resumed)
  double load = 0;            // open, check and map the checkpoint and the input
  ForwardTimes forward;       // summed over the windows (widen: embeddings and dequantization)
  ForwardFlops flops;         // summed over the windows
  double weight_spectra = 0;  // W_Q^T W_K
  double field_spectra = 0;   // E~ (and what else was asked) in the forward's callback
  double total = 0;
};

// The profile as a table, one stage a line, with `sgemm_gflops` the machine's rate at the run's
// thread count (measured by the caller, sgemm_gflops in forward.h).
std::string format_profile(const RunProfile& p, double sgemm_gflops);

}  // namespace attnspec
