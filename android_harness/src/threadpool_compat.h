// ExecuTorch's shared thread pool (libexecutorch_threadpool / extension_threadpool).
//
// A source build installs executorch/extension/threadpool/threadpool.h; the pip wheel
// ships the library but not that header, so the three entry points used here are
// declared to match its exported symbols (executorch 1.5.1):
//   executorch::extension::threadpool::get_threadpool()
//   executorch::extension::threadpool::ThreadPool::get_thread_count() const
//   executorch::extension::threadpool::ThreadPool::_unsafe_reset_threadpool(unsigned int)
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>

#if __has_include(<executorch/extension/threadpool/threadpool.h>)
#include <executorch/extension/threadpool/threadpool.h>
#else
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
#endif

namespace slmh {

inline void executorch_threadpool_reset(uint32_t threads) {
  if (auto* pool = executorch::extension::threadpool::get_threadpool()) pool->_unsafe_reset_threadpool(threads);
}

inline int64_t executorch_threadpool_size() {
  auto* pool = executorch::extension::threadpool::get_threadpool();
  return pool ? static_cast<int64_t>(pool->get_thread_count()) : 1;
}

// What --threads 0 means for LiteRT: one thread per online CPU, the size ExecuTorch's
// shared thread pool has by default (LiteRT's own default would be a single thread).
inline int64_t default_thread_count() {
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<int64_t>(cpus) : 1;
}

}  // namespace slmh
