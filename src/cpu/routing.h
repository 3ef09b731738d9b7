// Per-token routing on the CPU (docs/semantics.md "Routing"): logits -> top-k ids and weights,
// or precomputed / packed ids decoded as given.
#pragma once

#include <cstdint>

#include "flashinfer_moe/moe.h"

namespace flashinfer_moe {
namespace cpu {

// Routes tokens [t_begin, t_end) of `p`. Writes, for slot t*k + j, the global expert id (-1 for
// a precomputed id outside [0, num_experts)) and its fp32 routing weight. Thread-safe for
// disjoint token ranges; the result of a token never depends on the range it was routed in.
void route_tokens(const MoeProblem& p, int64_t t_begin, int64_t t_end, int32_t* ids,
                  float* weights);

}  // namespace cpu
}  // namespace flashinfer_moe
