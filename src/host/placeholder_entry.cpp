// TEMPORARY until the CPU executor lands (replaced by validate.cpp / executor files).
#include "flashinfer_moe/moe.h"
#include "host/status.h"
namespace flashinfer_moe {
Status validate(const MoeProblem&) { return make_status(StatusCode::NotImplemented, "todo"); }
Status workspace_size(const MoeProblem&, DeviceKind, size_t* b) { *b = 0; return make_status(StatusCode::NotImplemented, "todo"); }
Status run_cpu(const MoeProblem&, void*, size_t, int) { return make_status(StatusCode::NotImplemented, "todo"); }
Status route_cpu(const MoeProblem&, int) { return make_status(StatusCode::NotImplemented, "todo"); }
}
