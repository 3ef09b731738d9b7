// A minimal parallel_for for the CPU executor.
//
// Work [0, n) is cut into one contiguous range per thread. Results never depend on the cut:
// every output element is computed entirely by one call of `body`, in a fixed order, so any
// thread count gives bitwise identical results. Threads are started per call (the executor has
// a handful of phases), which keeps the library free of global state.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace flashinfer_moe {
namespace cpu {

// num_threads <= 0 means all hardware threads.
inline int resolve_num_threads(int num_threads) {
  if (num_threads > 0) return num_threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Calls body(begin, end) on disjoint ranges covering [0, n). At most `num_threads` ranges, and
// none smaller than `min_per_thread` items (small loops stay on the calling thread). The first
// exception thrown by any range is rethrown here after all threads have joined.
template <typename Body>
void parallel_for(int64_t n, int num_threads, int64_t min_per_thread, const Body& body) {
  if (n <= 0) return;
  const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_thread));
  const int64_t parts = std::min<int64_t>(std::max(1, num_threads), std::min(by_size, n));
  if (parts == 1) {
    body(int64_t{0}, n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run_part = [&](int64_t part) {
    const int64_t begin = n * part / parts;
    const int64_t end = n * (part + 1) / parts;
    try {
      body(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(parts - 1));
  try {
    for (int64_t part = 1; part < parts; ++part) workers.emplace_back(run_part, part);
  } catch (...) {
    // Could not start a thread: finish what was started, then report.
    for (std::thread& w : workers) w.join();
    throw;
  }
  run_part(0);
  for (std::thread& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace cpu
}  // namespace flashinfer_moe
