// Fiber stacks for the SIMT emulator: one per emulated GPU thread of a block.
//
// Each stack is kFiberStackBytes of mmap'd memory above one PROT_NONE guard page, so a kernel
// that overflows its stack faults at once instead of corrupting a neighbour. Pages are touched
// lazily, so 1024 stacks cost 64 MiB of address space but only the pages a kernel uses.
// Stacks are pooled process-wide: a launch takes what it needs and gives them back, so mmap
// runs once per stack for the life of the process, not once per launch or per block.
#pragma once

#include <boost/context/stack_context.hpp>

#include <cstddef>

namespace reclm::simt {

// 64 KiB: room for a kernel's locals (a few KiB of register tiles) and the emulator's frames.
inline constexpr std::size_t kFiberStackBytes = 64 * 1024;

// A stack from the pool (mapping a new one when the pool is empty). sp is the stack's top.
boost::context::stack_context acquire_fiber_stack();
// Gives a stack from acquire_fiber_stack back to the pool; no fiber may still run on it.
void release_fiber_stack(const boost::context::stack_context& stack);

// Hands a stack the caller owns to boost::context::fiber; the fiber never frees it.
struct BorrowedFiberStack {
  boost::context::stack_context stack;
  boost::context::stack_context allocate() { return stack; }
  void deallocate(boost::context::stack_context&) noexcept {}
};

}  // namespace reclm::simt
