// flashinfer._C: thin nanobind plumbing over libflashinfer_moe.
//
// Tensors arrive as DLPack arrays from any framework and become non-owning TensorViews; the
// caller keeps them alive for the duration of the call. Statuses become Python exceptions.
// No logic lives here: translation of the public API forms is in python/flashinfer/fused_moe.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "flashinfer_moe/moe.h"

namespace nb = nanobind;
namespace fm = flashinfer_moe;

namespace {

fm::DType to_dtype(nb::dlpack::dtype t) {
  using C = nb::dlpack::dtype_code;
  const auto code = static_cast<C>(t.code);
  if (t.lanes != 1) return fm::DType::Invalid;
  switch (code) {
    case C::Float:
      return t.bits == 32   ? fm::DType::F32
             : t.bits == 16 ? fm::DType::F16
             : t.bits == 64 ? fm::DType::F64
                            : fm::DType::Invalid;
    case C::Bfloat:
      return t.bits == 16 ? fm::DType::BF16 : fm::DType::Invalid;
    case C::Int:
      return t.bits == 32   ? fm::DType::I32
             : t.bits == 64 ? fm::DType::I64
             : t.bits == 16 ? fm::DType::I16
             : t.bits == 8  ? fm::DType::I8
                            : fm::DType::Invalid;
    case C::UInt:
      return t.bits == 8 ? fm::DType::U8 : fm::DType::Invalid;
    default:
      return fm::DType::Invalid;
  }
}

fm::TensorView to_view(nb::ndarray<> a) {
  fm::TensorView v;
  if (a.ndim() > static_cast<size_t>(fm::TensorView::kMaxDims)) {
    throw nb::value_error("tensors of more than 5 dimensions are not supported");
  }
  v.data = a.data();
  v.dtype = to_dtype(a.dtype());
  if (a.device_type() == nb::device::cpu::value) {
    v.device = fm::DeviceKind::CPU;
  } else if (a.device_type() == nb::device::cuda::value) {
    v.device = fm::DeviceKind::CUDA;
  } else {
    throw nb::value_error("tensors must live on the CPU or a CUDA device");
  }
  v.device_id = a.device_id();
  v.ndim = static_cast<int32_t>(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) {
    v.shape[i] = static_cast<int64_t>(a.shape(i));
    v.strides[i] = static_cast<int64_t>(a.stride(i));
  }
  return v;
}

void check_status(const fm::Status& s) {
  switch (s.code) {
    case fm::StatusCode::Ok:
      return;
    case fm::StatusCode::InvalidValue:
      throw nb::value_error(s.message);
    case fm::StatusCode::InvalidType:
      throw nb::type_error(s.message);
    case fm::StatusCode::NotImplemented:
      // NotImplementedError has no nanobind shortcut: raise it through the C API.
      PyErr_SetString(PyExc_NotImplementedError, s.message);
      throw nb::python_error();
    default:
      throw std::runtime_error(s.message);
  }
}

void* workspace_ptr(nb::object ws, size_t* bytes) {
  if (ws.is_none()) {
    *bytes = 0;
    return nullptr;
  }
  auto a = nb::cast<nb::ndarray<>>(ws);
  *bytes = a.nbytes();
  return a.data();
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "flashinfer-moe native core (torch-free; DLPack in, statuses out)";

  nb::enum_<fm::RoutingMethod>(m, "RoutingMethod")
      .value("Default", fm::RoutingMethod::Default)
      .value("Renormalize", fm::RoutingMethod::Renormalize)
      .value("DeepSeekV3", fm::RoutingMethod::DeepSeekV3)
      .value("Llama4", fm::RoutingMethod::Llama4)
      .value("RenormalizeNaive", fm::RoutingMethod::RenormalizeNaive)
      .value("TopK", fm::RoutingMethod::TopK)
      .value("SigmoidRenorm", fm::RoutingMethod::SigmoidRenorm)
      .value("MiniMax2", fm::RoutingMethod::MiniMax2)
      .value("Sigmoid", fm::RoutingMethod::Sigmoid)
      .value("TopKSigmoid", fm::RoutingMethod::TopKSigmoid)
      .value("Unspecified", fm::RoutingMethod::Unspecified)
      .value("RoundRobin", fm::RoutingMethod::RoundRobin);
  nb::enum_<fm::Activation>(m, "Activation")
      .value("Gelu", fm::Activation::Gelu)
      .value("Relu", fm::Activation::Relu)
      .value("Silu", fm::Activation::Silu)
      .value("Swiglu", fm::Activation::Swiglu)
      .value("Geglu", fm::Activation::Geglu)
      .value("SwigluBias", fm::Activation::SwigluBias)
      .value("Relu2", fm::Activation::Relu2)
      .value("SwigluStep", fm::Activation::SwigluStep)
      .value("GegluTanh", fm::Activation::GegluTanh)
      .value("Identity", fm::Activation::Identity)
      .value("Situ", fm::Activation::Situ)
      .value("InvalidType", fm::Activation::InvalidType);
  nb::enum_<fm::DType>(m, "DType")
      .value("Invalid", fm::DType::Invalid)
      .value("F32", fm::DType::F32)
      .value("F16", fm::DType::F16)
      .value("BF16", fm::DType::BF16)
      .value("F64", fm::DType::F64)
      .value("I32", fm::DType::I32)
      .value("I64", fm::DType::I64)
      .value("I16", fm::DType::I16)
      .value("U8", fm::DType::U8)
      .value("I8", fm::DType::I8);
  nb::enum_<fm::DeviceKind>(m, "DeviceKind")
      .value("CPU", fm::DeviceKind::CPU)
      .value("CUDA", fm::DeviceKind::CUDA);
  nb::enum_<fm::ElemFormat>(m, "ElemFormat")
      .value("Float", fm::ElemFormat::Float)
      .value("E4M3", fm::ElemFormat::E4M3)
      .value("E2M1Packed", fm::ElemFormat::E2M1Packed)
      .value("E2M1Unpacked", fm::ElemFormat::E2M1Unpacked)
      .value("Int4Packed", fm::ElemFormat::Int4Packed);
  nb::enum_<fm::ScaleFormat>(m, "ScaleFormat")
      .value("Float", fm::ScaleFormat::Float)
      .value("E4M3", fm::ScaleFormat::E4M3)
      .value("UE8M0", fm::ScaleFormat::UE8M0);
  nb::enum_<fm::ScaleLayout>(m, "ScaleLayout")
      .value("Linear", fm::ScaleLayout::Linear)
      .value("Swizzled128x4", fm::ScaleLayout::Swizzled128x4);
  nb::enum_<fm::ActQuant>(m, "ActQuant")
      .value("None_", fm::ActQuant::None)
      .value("Fp8Static", fm::ActQuant::Fp8Static)
      .value("Fp8PerToken", fm::ActQuant::Fp8PerToken)
      .value("Fp8PerGroup", fm::ActQuant::Fp8PerGroup)
      .value("MxFp8", fm::ActQuant::MxFp8)
      .value("NvFp4", fm::ActQuant::NvFp4);

  nb::enum_<fm::GemmTactic>(m, "GemmTactic")
      .value("Auto", fm::GemmTactic::Auto)
      .value("Sm80Decode", fm::GemmTactic::Sm80Decode)
      .value("Sm80Prefill", fm::GemmTactic::Sm80Prefill)
      .value("Sm90", fm::GemmTactic::Sm90);

  nb::class_<fm::TensorView>(m, "TensorView")
      .def(nb::init<>())
      .def_static("of", &to_view, nb::arg("array"), "A non-owning view of a DLPack array")
      .def_prop_ro("present", &fm::TensorView::present)
      .def_prop_ro("dtype", [](const fm::TensorView& v) { return v.dtype; })
      .def_prop_ro("shape", [](const fm::TensorView& v) {
        nb::list l;
        for (int i = 0; i < v.ndim; ++i) l.append(v.shape[i]);
        return nb::tuple(l);
      });

  nb::class_<fm::QuantTensor>(m, "QuantTensor")
      .def(nb::init<>())
      .def_rw("data", &fm::QuantTensor::data)
      .def_rw("format", &fm::QuantTensor::format)
      .def_rw("scale", &fm::QuantTensor::scale)
      .def_rw("scale_format", &fm::QuantTensor::scale_format)
      .def_rw("scale_layout", &fm::QuantTensor::scale_layout)
      .def_rw("block_rows", &fm::QuantTensor::block_rows)
      .def_rw("block_cols", &fm::QuantTensor::block_cols)
      .def_rw("global_scale", &fm::QuantTensor::global_scale);

  nb::class_<fm::ActQuantSpec>(m, "ActQuantSpec")
      .def(nb::init<>())
      .def_rw("mode", &fm::ActQuantSpec::mode)
      .def_rw("group_size", &fm::ActQuantSpec::group_size)
      .def_rw("static_scale", &fm::ActQuantSpec::static_scale);

  nb::class_<fm::RoutingSpec>(m, "RoutingSpec")
      .def(nb::init<>())
      .def_rw("method", &fm::RoutingSpec::method)
      .def_rw("logits", &fm::RoutingSpec::logits)
      .def_rw("bias", &fm::RoutingSpec::bias)
      .def_rw("n_group", &fm::RoutingSpec::n_group)
      .def_rw("topk_group", &fm::RoutingSpec::topk_group)
      .def_rw("routed_scaling_factor", &fm::RoutingSpec::routed_scaling_factor)
      .def_rw("norm_topk_prob", &fm::RoutingSpec::norm_topk_prob)
      .def_rw("topk_ids", &fm::RoutingSpec::topk_ids)
      .def_rw("topk_weights", &fm::RoutingSpec::topk_weights)
      .def_rw("packed", &fm::RoutingSpec::packed);

  nb::class_<fm::MoeProblem>(m, "MoeProblem")
      .def(nb::init<>())
      .def_rw("num_tokens", &fm::MoeProblem::num_tokens)
      .def_rw("hidden_size", &fm::MoeProblem::hidden_size)
      .def_rw("intermediate_size", &fm::MoeProblem::intermediate_size)
      .def_rw("num_experts", &fm::MoeProblem::num_experts)
      .def_rw("local_expert_offset", &fm::MoeProblem::local_expert_offset)
      .def_rw("local_num_experts", &fm::MoeProblem::local_num_experts)
      .def_rw("top_k", &fm::MoeProblem::top_k)
      .def_rw("expert_capacity", &fm::MoeProblem::expert_capacity)
      .def_rw("routing", &fm::MoeProblem::routing)
      .def_rw("input", &fm::MoeProblem::input)
      .def_rw("input_quant", &fm::MoeProblem::input_quant)
      .def_rw("w1", &fm::MoeProblem::w1)
      .def_rw("w1_bias", &fm::MoeProblem::w1_bias)
      .def_rw("w2", &fm::MoeProblem::w2)
      .def_rw("w2_bias", &fm::MoeProblem::w2_bias)
      .def_rw("inter_quant", &fm::MoeProblem::inter_quant)
      .def_rw("activation", &fm::MoeProblem::activation)
      .def_rw("act_alpha", &fm::MoeProblem::act_alpha)
      .def_rw("act_beta", &fm::MoeProblem::act_beta)
      .def_rw("act_limit", &fm::MoeProblem::act_limit)
      .def_rw("gemm1_delta", &fm::MoeProblem::gemm1_delta)
      .def_rw("routing_weight_on_input", &fm::MoeProblem::routing_weight_on_input)
      .def_rw("compute_dtype", &fm::MoeProblem::compute_dtype)
      .def_rw("tactic", &fm::MoeProblem::tactic)
      .def_rw("output", &fm::MoeProblem::output)
      .def_rw("permuted_output", &fm::MoeProblem::permuted_output)
      .def_rw("inter_output", &fm::MoeProblem::inter_output)
      .def_rw("topk_ids_out", &fm::MoeProblem::topk_ids_out)
      .def_rw("topk_weights_out", &fm::MoeProblem::topk_weights_out)
      .def_rw("expanded_to_permuted_out", &fm::MoeProblem::expanded_to_permuted_out);

  m.def("validate", [](const fm::MoeProblem& p) { check_status(fm::validate(p)); });
  m.def("workspace_size", [](const fm::MoeProblem& p, fm::DeviceKind device) {
    size_t bytes = 0;
    check_status(fm::workspace_size(p, device, &bytes));
    return bytes;
  });
  m.def(
      "run_cpu",
      [](const fm::MoeProblem& p, nb::object workspace, int num_threads) {
        size_t bytes = 0;
        void* ws = workspace_ptr(workspace, &bytes);
        fm::Status s;
        {
          nb::gil_scoped_release release;
          s = fm::run_cpu(p, ws, bytes, num_threads);
        }
        check_status(s);
      },
      nb::arg("problem"), nb::arg("workspace").none(), nb::arg("num_threads") = 0);
  m.def(
      "route_cpu",
      [](const fm::MoeProblem& p, int num_threads) {
        fm::Status s;
        {
          nb::gil_scoped_release release;
          s = fm::route_cpu(p, num_threads);
        }
        check_status(s);
      },
      nb::arg("problem"), nb::arg("num_threads") = 0);
  m.def(
      "run_cuda",
      [](const fm::MoeProblem& p, nb::object workspace, uintptr_t stream) {
        size_t bytes = 0;
        void* ws = workspace_ptr(workspace, &bytes);
        fm::Status s;
        {
          nb::gil_scoped_release release;
          s = fm::run_cuda(p, ws, bytes, reinterpret_cast<void*>(stream));
        }
        check_status(s);
      },
      nb::arg("problem"), nb::arg("workspace").none(), nb::arg("stream"));
  m.def(
      "route_cuda",
      [](const fm::MoeProblem& p, uintptr_t stream) {
        fm::Status s;
        {
          nb::gil_scoped_release release;
          s = fm::route_cuda(p, reinterpret_cast<void*>(stream));
        }
        check_status(s);
      },
      nb::arg("problem"), nb::arg("stream"));
  m.def("built_with_cuda", &fm::built_with_cuda);
  m.def("cuda_architectures", []() { return std::string(fm::cuda_architectures()); });
}
