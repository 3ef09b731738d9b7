// The Hopper (sm_90a) instructions our own WGMMA kernels use, as thin PTX wrappers: mbarriers,
// TMA tensor loads, named barriers, register reallocation and FP8 warpgroup MMAs. The CUTLASS
// kernels of the sm90 families bring their own; this header serves kernels written without
// CUTLASS's collectives (sm90_fp8_gated_gemm.cu). Every wrapper compiles to nothing outside sm_90a, where callers
// must not run (their supports() checks the device).
#pragma once

#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FIMOE_SM90A_DEVICE 1
#endif

namespace flashinfer_moe {
namespace cuda {
namespace sm90_ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- mbarriers --------------------------------------------------------------------------------

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count));
#endif
}

// Makes the initialized barriers visible to the async (TMA) proxy.
__device__ __forceinline__ void fence_barrier_init() {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
#endif
}

// One arrival that also announces `bytes` of TMA traffic the barrier must see complete.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
#endif
}

// Blocks until the barrier's phase with parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_loop:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_loop;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
#endif
}

// ---- TMA --------------------------------------------------------------------------------------

// Tile loads into shared memory, completing on `bar`; `tmap` is a __grid_constant__ CUtensorMap.
// Coordinates are elements, innermost first; out-of-range elements arrive as zeros.
__device__ __forceinline__ void tma_load_2d(void* dst, const void* tmap, uint64_t* bar, int32_t c0,
                                            int32_t c1) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(smem_addr(bar)), "r"(c0), "r"(c1)
      : "memory");
#endif
}

__device__ __forceinline__ void tma_load_3d(void* dst, const void* tmap, uint64_t* bar, int32_t c0,
                                            int32_t c1, int32_t c2) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
#endif
}

__device__ __forceinline__ void prefetch_tensormap(const void* tmap) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(tmap)) : "memory");
#endif
}

// ---- named barriers ---------------------------------------------------------------------------

// Synchronizes `threads` threads (a multiple of 32) on hardware barrier `id` (1..15; 0 is
// __syncthreads').
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
#endif
}

// ---- register budget --------------------------------------------------------------------------

// Moves registers between warpgroups at run time: every warp of the warpgroup executes it with
// the same count (a multiple of 8 in [24, 256]). A producer warpgroup gives registers back
// (dec) so that the MMA warpgroups can hold more accumulators (inc) than the launch's average.
template <int kCount>
__device__ __forceinline__ void warpgroup_reg_dealloc() {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kCount));
#endif
}

template <int kCount>
__device__ __forceinline__ void warpgroup_reg_alloc() {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kCount));
#endif
}

// ---- warpgroup MMA ----------------------------------------------------------------------------

// Shared-memory matrix descriptor of a K-major tile stored as TMA's 128-byte swizzle writes it:
// rows of 128 bytes, 8-row atoms 1024 bytes apart (the tile 1024-byte aligned). Stepping K by
// 32 bytes inside the atom is start address + 32 (the swizzle acts on absolute address bits).
__device__ __forceinline__ uint64_t kmajor_sw128_desc(const void* tile) {
  const uint64_t start = (smem_addr(tile) & 0x3FFFFu) >> 4;
  constexpr uint64_t kLeading = 1;            // unused by swizzled K-major layouts
  constexpr uint64_t kStride = 1024 >> 4;     // between 8-row atoms
  constexpr uint64_t kSwizzle128 = 1ull << 62;
  return start | (kLeading << 16) | (kStride << 32) | kSwizzle128;
}

__device__ __forceinline__ void wgmma_fence() {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_wait_all() {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
#endif
}

// Keeps the compiler from moving accesses to `r` across an asynchronous MMA on it.
__device__ __forceinline__ void fence_operand(float& r) {
  asm volatile("" : "+f"(r)::"memory");
}

// d[64] (+)= A(64 x 32, smem) * B(128 x 32, smem)^T in e4m3 with fp32 accumulation; d is the
// m64n128 accumulator fragment: thread t of the warpgroup holds, for j in [0, 16), row
// 16 * (t / 32) + (t % 32) / 4 (+ 8 for d[4j + 2], d[4j + 3]) and columns 8j + 2 (t % 4) + {0, 1}.
// accumulate == 0 overwrites d instead of adding to it.
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], uint64_t desc_a,
                                                      uint64_t desc_b, int accumulate) {
#ifdef FIMOE_SM90A_DEVICE
  asm volatile(
      "{\n"
      ".reg .pred acc;\n"
      "setp.ne.b32 acc, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, acc, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),
        "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]),
        "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),
        "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]),
        "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#else
  (void)d, (void)desc_a, (void)desc_b, (void)accumulate;
#endif
}

}  // namespace sm90_ptx
}  // namespace cuda
}  // namespace flashinfer_moe
