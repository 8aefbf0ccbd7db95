// `attnspec plan`: a compression plan per head. For every window, head and rank k (0..r, r =
// min(n, d_h)) the energy field is truncated to its best rank-k approximation and pushed through
// the model's causal / sliding-window softmax (compression.h); the mean total-variation distance
// and KL divergence to the model's own attention are recorded (plan_curves.csv). Per tolerance EPS
// and head, plan.csv gives the smallest k whose TV stays <= EPS (worst window), and what that rank
// saves of the q.k score FLOPs and of the key cache.
#pragma once

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/run/inputs.h"
#include "attnspec/run/request.h"

namespace attnspec {

// Writes plan.csv, plan_curves.csv and plan.json into request.out; returns plan.json's content.
// Throws InputError on bad input before anything is written.
nlohmann::json run_plan(const Request& request);

}  // namespace attnspec
