// Host-side validation of a MoeProblem: sizes, ranges, shapes, dtypes, devices and aliasing.
//
// Never touches tensor data (so it is safe on CUDA tensors and inside graph capture). Every
// message starts with the field path as the Python layer shows it ("w1.data", "routing.bias",
// "top_k") followed by what was expected and what was given.
#include "host/validate.h"

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "flashinfer_moe/moe.h"
#include "host/status.h"
#include "host/tensor_access.h"
#include "host/validate_operands.h"

namespace flashinfer_moe {
namespace {

using validation::check_act_quant;
using validation::check_dtype;
using validation::check_float_dtype;
using validation::check_quant;
using validation::check_shape;

struct NamedView {
  std::string name;
  const TensorView* view;
};

Status check_sizes(const MoeProblem& p, bool routing_only) {
  if (p.num_tokens < 0) {
    return make_status(StatusCode::InvalidValue, "num_tokens: must be >= 0, got %lld",
                       static_cast<long long>(p.num_tokens));
  }
  if (!routing_only && p.hidden_size < 1) {
    return make_status(StatusCode::InvalidValue, "hidden_size: must be >= 1, got %lld",
                       static_cast<long long>(p.hidden_size));
  }
  if (!routing_only && p.intermediate_size < 1) {
    return make_status(StatusCode::InvalidValue, "intermediate_size: must be >= 1, got %lld",
                       static_cast<long long>(p.intermediate_size));
  }
  if (p.num_experts < 1) {
    return make_status(StatusCode::InvalidValue, "num_experts: must be >= 1, got %d",
                       p.num_experts);
  }
  if (p.local_expert_offset < 0) {
    return make_status(StatusCode::InvalidValue, "local_expert_offset: must be >= 0, got %d",
                       p.local_expert_offset);
  }
  if (p.local_num_experts < 1) {
    return make_status(StatusCode::InvalidValue, "local_num_experts: must be >= 1, got %d",
                       p.local_num_experts);
  }
  if (static_cast<int64_t>(p.local_expert_offset) + p.local_num_experts > p.num_experts) {
    return make_status(StatusCode::InvalidValue,
                       "local_expert_offset + local_num_experts: must be <= num_experts=%d, "
                       "got %d + %d",
                       p.num_experts, p.local_expert_offset, p.local_num_experts);
  }
  if (p.top_k < 1 || p.top_k > p.num_experts) {
    return make_status(StatusCode::InvalidValue, "top_k: must be in [1, num_experts=%d], got %d",
                       p.num_experts, p.top_k);
  }
  if (p.expert_capacity < 0) {
    return make_status(StatusCode::InvalidValue, "expert_capacity: must be >= 0, got %lld",
                       static_cast<long long>(p.expert_capacity));
  }
  return ok_status();
}

Status check_routing(const MoeProblem& p) {
  const RoutingSpec& r = p.routing;
  const int m = static_cast<int>(r.method);
  if (m < 0 || m > static_cast<int>(RoutingMethod::RoundRobin) ||
      r.method == RoutingMethod::Unspecified) {
    return make_status(StatusCode::InvalidValue,
                       "routing.method: must be a RoutingMethodType other than Unspecified, got %d",
                       m);
  }
  if (r.method == RoutingMethod::Llama4 && p.top_k != 1) {
    return make_status(StatusCode::InvalidValue, "top_k: Llama4 routing needs top_k == 1, got %d",
                       p.top_k);
  }
  if (r.n_group < 0 || r.topk_group < 0) {
    return make_status(StatusCode::InvalidValue,
                       "routing.n_group / routing.topk_group: must be >= 0, got %d / %d", r.n_group,
                       r.topk_group);
  }
  if (r.method == RoutingMethod::DeepSeekV3 && r.n_group > 1) {
    const int E = p.num_experts;
    if (E % r.n_group != 0) {
      return make_status(StatusCode::InvalidValue,
                         "routing.n_group: must divide num_experts=%d, got %d", E, r.n_group);
    }
    if (r.topk_group < 1 || r.topk_group > r.n_group) {
      return make_status(StatusCode::InvalidValue,
                         "routing.topk_group: must be in [1, n_group=%d], got %d", r.n_group,
                         r.topk_group);
    }
    const int64_t reachable = static_cast<int64_t>(r.topk_group) * (E / r.n_group);
    if (p.top_k > reachable) {
      return make_status(StatusCode::InvalidValue,
                         "top_k: must be <= topk_group * num_experts / n_group = %lld, got %d",
                         static_cast<long long>(reachable), p.top_k);
    }
  }
  const int64_t T = p.num_tokens;
  const int64_t k = p.top_k;
  if (r.logits.present() == r.topk_ids.present()) {
    return make_status(StatusCode::InvalidValue,
                       "routing.logits / routing.topk_ids: exactly one must be given, got %s",
                       r.logits.present() ? "both" : "neither");
  }
  if (r.logits.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("routing.logits", r.logits));
    FIMOE_RETURN_IF_ERROR(
        check_shape("routing.logits", r.logits, {T, p.num_experts}, "(num_tokens, num_experts)"));
  } else {
    FIMOE_RETURN_IF_ERROR(check_dtype("routing.topk_ids", r.topk_ids, DType::I32, ""));
    FIMOE_RETURN_IF_ERROR(
        check_shape("routing.topk_ids", r.topk_ids, {T, k}, "(num_tokens, top_k)"));
    if (r.packed && r.topk_weights.present()) {
      return make_status(StatusCode::InvalidValue,
                         "routing.topk_weights: must be absent with packed topk_ids");
    }
    if (!r.packed && !r.topk_weights.present()) {
      return make_status(StatusCode::InvalidValue,
                         "routing.topk_weights: required with (unpacked) topk_ids");
    }
    if (r.topk_weights.present()) {
      FIMOE_RETURN_IF_ERROR(check_float_dtype("routing.topk_weights", r.topk_weights));
      FIMOE_RETURN_IF_ERROR(
          check_shape("routing.topk_weights", r.topk_weights, {T, k}, "(num_tokens, top_k)"));
    }
  }
  if (r.bias.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("routing.bias", r.bias));
    FIMOE_RETURN_IF_ERROR(check_shape("routing.bias", r.bias, {p.num_experts}, "(num_experts)"));
  }
  return ok_status();
}

Status check_routing_outputs(const MoeProblem& p) {
  const int64_t T = p.num_tokens;
  const int64_t k = p.top_k;
  if (p.topk_ids_out.present()) {
    FIMOE_RETURN_IF_ERROR(check_dtype("topk_ids_out", p.topk_ids_out, DType::I32, ""));
    FIMOE_RETURN_IF_ERROR(
        check_shape("topk_ids_out", p.topk_ids_out, {T, k}, "(num_tokens, top_k)"));
  }
  if (p.topk_weights_out.present()) {
    FIMOE_RETURN_IF_ERROR(check_dtype("topk_weights_out", p.topk_weights_out, DType::F32, ""));
    FIMOE_RETURN_IF_ERROR(
        check_shape("topk_weights_out", p.topk_weights_out, {T, k}, "(num_tokens, top_k)"));
  }
  if (p.expanded_to_permuted_out.present()) {
    FIMOE_RETURN_IF_ERROR(
        check_dtype("expanded_to_permuted_out", p.expanded_to_permuted_out, DType::I32, ""));
    FIMOE_RETURN_IF_ERROR(check_shape("expanded_to_permuted_out", p.expanded_to_permuted_out,
                                      {T, k}, "(num_tokens, top_k)"));
  }
  return ok_status();
}

Status check_layer(const MoeProblem& p) {
  const int64_t T = p.num_tokens, H = p.hidden_size, I = p.intermediate_size;
  const int64_t E = p.local_num_experts, k = p.top_k;
  const int act = static_cast<int>(p.activation);
  if (act < 0 || act >= static_cast<int>(Activation::InvalidType)) {
    return make_status(StatusCode::InvalidValue, "activation: invalid ActivationType value %d",
                       act);
  }
  if (!is_float_dtype(p.compute_dtype)) {
    return make_status(StatusCode::InvalidType, "compute_dtype: expected F32, F16 or BF16, got %s",
                       dtype_name(p.compute_dtype));
  }
  const bool gated = is_gated(p.activation);
  const int64_t M1 = gated ? 2 * I : I;
  FIMOE_RETURN_IF_ERROR(check_quant("input", p.input, false, 1, T, H, "num_tokens", "H"));
  FIMOE_RETURN_IF_ERROR(check_act_quant("input_quant", p.input_quant, E));
  FIMOE_RETURN_IF_ERROR(check_quant("w1", p.w1, true, E, M1, H, "M1", "H"));
  FIMOE_RETURN_IF_ERROR(check_quant("w2", p.w2, true, E, H, I, "H", "I"));
  FIMOE_RETURN_IF_ERROR(check_act_quant("inter_quant", p.inter_quant, E));
  if (p.w1_bias.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("w1_bias", p.w1_bias));
    FIMOE_RETURN_IF_ERROR(check_shape("w1_bias", p.w1_bias, {E, M1}, "(E_local, M1)"));
  }
  if (p.w2_bias.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("w2_bias", p.w2_bias));
    FIMOE_RETURN_IF_ERROR(check_shape("w2_bias", p.w2_bias, {E, H}, "(E_local, H)"));
  }
  const NamedView act_params[] = {
      {"act_alpha", &p.act_alpha}, {"act_beta", &p.act_beta}, {"act_limit", &p.act_limit}};
  for (const NamedView& a : act_params) {
    if (!a.view->present()) continue;
    FIMOE_RETURN_IF_ERROR(check_dtype(a.name, *a.view, DType::F32, ""));
    FIMOE_RETURN_IF_ERROR(check_shape(a.name, *a.view, {E}, "(E_local)"));
  }
  if (p.gemm1_delta.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("gemm1_delta", p.gemm1_delta));
    FIMOE_RETURN_IF_ERROR(
        check_shape("gemm1_delta", p.gemm1_delta, {T, k, M1}, "(num_tokens, top_k, M1)"));
  }
  if (p.output.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("output", p.output));
    FIMOE_RETURN_IF_ERROR(check_shape("output", p.output, {T, H}, "(num_tokens, H)"));
  }
  if (p.permuted_output.present()) {
    FIMOE_RETURN_IF_ERROR(check_dtype("permuted_output", p.permuted_output, DType::F32, ""));
    FIMOE_RETURN_IF_ERROR(
        check_shape("permuted_output", p.permuted_output, {T * k, H}, "(num_tokens * top_k, H)"));
  }
  if (p.inter_output.present()) {
    FIMOE_RETURN_IF_ERROR(check_float_dtype("inter_output", p.inter_output));
    FIMOE_RETURN_IF_ERROR(
        check_shape("inter_output", p.inter_output, {T * k, I}, "(num_tokens * top_k, I)"));
  }
  return ok_status();
}

void add_if_present(std::vector<NamedView>& out, const char* name, const TensorView& v) {
  if (v.present()) out.push_back({name, &v});
}

void add_quant(std::vector<NamedView>& out, const char* prefix, const QuantTensor& q) {
  const std::string p = prefix;
  if (q.data.present()) out.push_back({p + ".data", &q.data});
  if (q.scale.present()) out.push_back({p + ".scale", &q.scale});
  if (q.global_scale.present()) out.push_back({p + ".global_scale", &q.global_scale});
}

void collect_tensors(const MoeProblem& p, bool routing_only, std::vector<NamedView>& inputs,
                     std::vector<NamedView>& outputs) {
  add_if_present(inputs, "routing.logits", p.routing.logits);
  add_if_present(inputs, "routing.bias", p.routing.bias);
  add_if_present(inputs, "routing.topk_ids", p.routing.topk_ids);
  add_if_present(inputs, "routing.topk_weights", p.routing.topk_weights);
  add_if_present(outputs, "topk_ids_out", p.topk_ids_out);
  add_if_present(outputs, "topk_weights_out", p.topk_weights_out);
  if (routing_only) return;
  add_quant(inputs, "input", p.input);
  add_if_present(inputs, "input_quant.static_scale", p.input_quant.static_scale);
  add_quant(inputs, "w1", p.w1);
  add_if_present(inputs, "w1_bias", p.w1_bias);
  add_quant(inputs, "w2", p.w2);
  add_if_present(inputs, "w2_bias", p.w2_bias);
  add_if_present(inputs, "inter_quant.static_scale", p.inter_quant.static_scale);
  add_if_present(inputs, "act_alpha", p.act_alpha);
  add_if_present(inputs, "act_beta", p.act_beta);
  add_if_present(inputs, "act_limit", p.act_limit);
  add_if_present(inputs, "gemm1_delta", p.gemm1_delta);
  add_if_present(outputs, "output", p.output);
  add_if_present(outputs, "permuted_output", p.permuted_output);
  add_if_present(outputs, "inter_output", p.inter_output);
  add_if_present(outputs, "expanded_to_permuted_out", p.expanded_to_permuted_out);
}

const char* device_name(DeviceKind d) { return d == DeviceKind::CUDA ? "cuda" : "cpu"; }

Status check_same_device(const std::vector<NamedView>& all) {
  if (all.empty()) return ok_status();
  const TensorView& ref = *all.front().view;
  for (const NamedView& t : all) {
    if (t.view->device != ref.device || t.view->device_id != ref.device_id) {
      return make_status(StatusCode::InvalidValue,
                         "%s: all tensors must be on one device; it is on %s:%d but %s is on %s:%d",
                         t.name.c_str(), device_name(t.view->device), t.view->device_id,
                         all.front().name.c_str(), device_name(ref.device), ref.device_id);
    }
  }
  return ok_status();
}

// Byte range [lo, hi) a strided view can touch; empty views touch nothing.
bool byte_range(const TensorView& v, uintptr_t* lo, uintptr_t* hi) {
  if (v.data == nullptr || v.numel() == 0) return false;
  int64_t min_off = 0, max_off = 0;
  for (int d = 0; d < v.ndim; ++d) {
    const int64_t span = (v.shape[d] - 1) * v.strides[d];
    if (span < 0)
      min_off += span;
    else
      max_off += span;
  }
  const int64_t es = dtype_bytes(v.dtype) > 0 ? dtype_bytes(v.dtype) : 1;
  const uintptr_t base = reinterpret_cast<uintptr_t>(v.data);
  *lo = base + static_cast<uintptr_t>(min_off * es);
  *hi = base + static_cast<uintptr_t>((max_off + 1) * es);
  return true;
}

bool overlaps(const TensorView& a, const TensorView& b) {
  uintptr_t alo, ahi, blo, bhi;
  if (!byte_range(a, &alo, &ahi) || !byte_range(b, &blo, &bhi)) return false;
  return alo < bhi && blo < ahi;
}

Status check_no_alias(const std::vector<NamedView>& inputs, const std::vector<NamedView>& outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (const NamedView& in : inputs) {
      if (overlaps(*outputs[i].view, *in.view)) {
        return make_status(StatusCode::InvalidValue, "%s: must not alias the input %s",
                           outputs[i].name.c_str(), in.name.c_str());
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (overlaps(*outputs[i].view, *outputs[j].view)) {
        return make_status(StatusCode::InvalidValue, "%s: must not alias the output %s",
                           outputs[i].name.c_str(), outputs[j].name.c_str());
      }
    }
  }
  return ok_status();
}

Status validate_impl(const MoeProblem& p, bool routing_only) {
  FIMOE_RETURN_IF_ERROR(check_sizes(p, routing_only));
  FIMOE_RETURN_IF_ERROR(check_routing(p));
  if (!routing_only) FIMOE_RETURN_IF_ERROR(check_layer(p));
  FIMOE_RETURN_IF_ERROR(check_routing_outputs(p));
  if (routing_only) {
    if (!p.topk_ids_out.present() || !p.topk_weights_out.present()) {
      return make_status(StatusCode::InvalidValue, "%s: required for routing alone",
                         p.topk_ids_out.present() ? "topk_weights_out" : "topk_ids_out");
    }
  }
  std::vector<NamedView> inputs, outputs;
  collect_tensors(p, routing_only, inputs, outputs);
  std::vector<NamedView> all = inputs;
  all.insert(all.end(), outputs.begin(), outputs.end());
  FIMOE_RETURN_IF_ERROR(check_same_device(all));
  return check_no_alias(inputs, outputs);
}

}  // namespace

Status validate(const MoeProblem& p) {
  try {
    return validate_impl(p, false);
  } catch (const std::exception& e) {
    return make_status(StatusCode::RuntimeFailure, "validate: %s", e.what());
  }
}

Status validate_routing_only(const MoeProblem& p) {
  try {
    return validate_impl(p, true);
  } catch (const std::exception& e) {
    return make_status(StatusCode::RuntimeFailure, "validate: %s", e.what());
  }
}

Status check_device(const MoeProblem& p, DeviceKind device, bool routing_only) {
  std::vector<NamedView> inputs, outputs;
  collect_tensors(p, routing_only, inputs, outputs);
  inputs.insert(inputs.end(), outputs.begin(), outputs.end());
  for (const NamedView& t : inputs) {
    if (t.view->device != device) {
      return make_status(StatusCode::InvalidValue, "%s: expected a %s tensor, got a %s tensor",
                         t.name.c_str(), device_name(device), device_name(t.view->device));
    }
  }
  return ok_status();
}

}  // namespace flashinfer_moe
