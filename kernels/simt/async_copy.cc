// The emulator's cp.async (kernels/simt/async_copy.h): copies queue on the issuing thread and
// land when it waits for their group.
#include "kernels/simt/async_copy.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/simt/usage_error.h"

namespace reclm::simt {
namespace {

void perform(const AsyncCopy& copy) {
  std::memcpy(copy.dst, copy.src, static_cast<std::size_t>(copy.src_bytes));
  std::memset(static_cast<unsigned char*>(copy.dst) + copy.src_bytes, 0, static_cast<std::size_t>(16 - copy.src_bytes));
}

}  // namespace

void issue_async_copy(void* dst, const void* src, int src_bytes) {
  ThreadContext& thread = current_thread();
  RECLM_SIMT_CHECK(src_bytes >= 0 && src_bytes <= 16, "{}: cp.async of {} source bytes (0..16)",
              describe_current_thread(), src_bytes);
  RECLM_SIMT_CHECK(reinterpret_cast<std::uintptr_t>(dst) % 16 == 0 && reinterpret_cast<std::uintptr_t>(src) % 16 == 0,
              "{}: cp.async from {} to {}: both addresses must be 16-byte aligned", describe_current_thread(),
              src, dst);
  RECLM_SIMT_CHECK(is_block_shared_memory(dst, 16), "{}: cp.async destination {} is not the block's shared memory",
              describe_current_thread(), dst);
  thread.async_copies.push_back({dst, src, src_bytes, -1});
}

void commit_async_copies() {
  ThreadContext& thread = current_thread();
  for (AsyncCopy& copy : thread.async_copies) {
    if (copy.group < 0) copy.group = thread.async_groups_committed;
  }
  ++thread.async_groups_committed;  // an empty group counts too, as in PTX
}

void wait_async_copies(int pending_groups) {
  ThreadContext& thread = current_thread();
  const int complete_below = thread.async_groups_committed - pending_groups;  // groups [0, this) land
  std::vector<AsyncCopy>& copies = thread.async_copies;
  for (const AsyncCopy& copy : copies) {
    if (copy.group >= 0 && copy.group < complete_below) perform(copy);
  }
  copies.erase(std::remove_if(copies.begin(), copies.end(),
                              [&](const AsyncCopy& c) { return c.group >= 0 && c.group < complete_below; }),
               copies.end());
}

void finish_async_copies(ThreadContext& thread) {
  for (const AsyncCopy& copy : thread.async_copies) perform(copy);
  thread.async_copies.clear();
  thread.async_groups_committed = 0;
}

}  // namespace reclm::simt
