#include "kernels/simt/fiber_stacks.h"

#include <sys/mman.h>
#include <unistd.h>

#include <mutex>
#include <vector>

#include "runtime/errors.h"

namespace reclm::simt {
namespace {

std::mutex pool_mutex;
std::vector<boost::context::stack_context>& pool() {
  static auto* stacks = new std::vector<boost::context::stack_context>();  // never destroyed:
  return *stacks;  // worker threads may still release stacks while static destructors run
}

boost::context::stack_context map_fiber_stack() {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t bytes = kFiberStackBytes + page;
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
  RECLM_CHECK(base != MAP_FAILED, "simt: mmap of a {}-byte fiber stack failed", bytes);
  // Stacks grow down: the guard page is the lowest page.
  RECLM_CHECK(mprotect(base, page, PROT_NONE) == 0, "simt: mprotect of a fiber stack guard page failed");
  boost::context::stack_context stack;
  stack.size = kFiberStackBytes;
  stack.sp = static_cast<char*>(base) + bytes;
  return stack;
}

}  // namespace

boost::context::stack_context acquire_fiber_stack() {
  {
    std::lock_guard<std::mutex> lock(pool_mutex);
    if (!pool().empty()) {
      boost::context::stack_context stack = pool().back();
      pool().pop_back();
      return stack;
    }
  }
  return map_fiber_stack();
}

void release_fiber_stack(const boost::context::stack_context& stack) {
  std::lock_guard<std::mutex> lock(pool_mutex);
  pool().push_back(stack);
}

}  // namespace reclm::simt
