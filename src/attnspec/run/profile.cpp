#include "attnspec/run/profile.h"

#include <cstdio>

namespace attnspec {

std::string format_profile(const RunProfile& p, double sgemm) {
  const ForwardTimes& t = p.forward;
  // The forward's callback holds the field spectra; what the forward's stages and the measured
  // steps leave of the total is the output (files, aggregates) and bookkeeping.
  const double forward = t.widen + t.norm + t.qkv + t.rope + t.attention + t.out_proj + t.mlp;
  const double output = p.total - p.load - p.weight_spectra - forward - p.field_spectra;
  std::string out;
  char line[200];
  std::snprintf(line, sizeof line,
                "attnspec: profile of %d window%s on %d thread%s; this machine's sgemm: %.1f GFLOP/s (1024^3, %d thread%s)\n",
                p.windows, p.windows == 1 ? "" : "s", p.threads, p.threads == 1 ? "" : "s", sgemm, p.threads,
                p.threads == 1 ? "" : "s");
  out += line;
  std::snprintf(line, sizeof line, "  %-34s %9s %7s %9s %9s %9s\n", "stage", "seconds", "share", "GFLOP", "GFLOP/s",
                "of sgemm");
  out += line;
  auto row = [&](const char* name, double seconds, double flops) {
    const double share = p.total > 0 ? 100.0 * seconds / p.total : 0;
    if (flops > 0 && seconds > 0)
      std::snprintf(line, sizeof line, "  %-34s %9.3f %6.1f%% %9.2f %9.1f %8.1f%%\n", name, seconds, share, flops / 1e9,
                    flops / 1e9 / seconds, 100.0 * flops / 1e9 / seconds / sgemm);
    else
      std::snprintf(line, sizeof line, "  %-34s %9.3f %6.1f%%\n", name, seconds, share);
    out += line;
  };
  row("load (open, check, map)", p.load, 0);
  row("embeddings and dequantization", t.widen, 0);
  if (t.widened_bytes > 0) {
    std::snprintf(line, sizeof line, "  %-34s %9.2f GB of float32 copies\n", "  (weights widened)", t.widened_bytes / 1e9);
    out += line;
  }
  row("Q, K, V products", t.qkv, p.flops.qkv);
  row("RoPE", t.rope, 0);
  row("norms", t.norm, 0);
  row("attention (scores, softmax, P V)", t.attention, p.flops.attention);
  row("output projection", t.out_proj, p.flops.out_proj);
  row("MLP", t.mlp, p.flops.mlp);
  row("forward, all stages", forward, p.flops.total());
  row("W_Q^T W_K spectra", p.weight_spectra, 0);
  row("field spectra and metrics", p.field_spectra, 0);
  row("output files and the rest", output > 0 ? output : 0, 0);
  row("total", p.total, 0);
  return out;
}

}  // namespace attnspec
