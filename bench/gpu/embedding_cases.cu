// Embedding kernels (kernels/cuda/embedding.cu, embedding_bag.cu). Ids are uniform over the
// vocabulary, so some rows repeat and most of the table is untouched. `bytes` counts what must
// move at the least: each distinct table row read once (forward) or read and written once
// (backward), every dout / out row once, and the ids / offsets.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/embedding_bag.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<int32_t> random_ids(int64_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = dist(rng);
  return v;
}

int64_t distinct(const std::vector<int32_t>& ids, int32_t vocab) {
  std::vector<bool> seen(static_cast<size_t>(vocab), false);
  int64_t count = 0;
  for (int32_t id : ids) {
    if (!seen[id]) ++count;
    seen[id] = true;
  }
  return count;
}

struct TokenBuffers {
  simt::DeviceBuffer<float> table, rows;  // rows: out (forward) or dout (backward) [n, dim]
  simt::DeviceBuffer<int32_t> ids, workspace;
  simt::DeviceBuffer<int32_t> src_rows;  // scatter_add_rows: the rows read in reverse order
};

// Token embedding: 65536 tokens x 2048 floats (512 MiB of rows), vocabulary 50000.
std::vector<KernelCase> token_cases() {
  const int64_t n = 65536, dim = 2048;
  const int32_t vocab = 50000;
  const std::vector<int32_t> ids = random_ids(n, vocab, 1);
  const int64_t rows_bytes = n * dim * 4, distinct_bytes = distinct(ids, vocab) * dim * 4;
  const size_t workspace_bytes = cuda::embedding_backward_workspace_bytes(n, vocab);
  std::vector<int32_t> reversed(static_cast<size_t>(n));
  for (int64_t p = 0; p < n; ++p) reversed[p] = static_cast<int32_t>(n - 1 - p);
  auto b = std::make_shared<TokenBuffers>(TokenBuffers{
      simt::DeviceBuffer<float>(random_floats(static_cast<size_t>(vocab * dim), 2)),
      simt::DeviceBuffer<float>(random_floats(static_cast<size_t>(n * dim), 3)),
      simt::DeviceBuffer<int32_t>(ids), simt::DeviceBuffer<int32_t>((workspace_bytes + 3) / 4),
      simt::DeviceBuffer<int32_t>(reversed)});
  const std::string shape = std::to_string(n) + " tokens x " + std::to_string(dim);
  std::vector<KernelCase> cases(4);
  cases[0].name = "embedding_forward " + shape;
  cases[0].bytes = distinct_bytes + rows_bytes + 4 * n;
  cases[0].run = [b, n, dim](cudaStream_t s) {
    return cuda::embedding_forward(b->rows.data(), b->table.data(), b->ids.data(), n, dim, s);
  };
  // The backward cases accumulate into the table on every run (values grow; the timing does not
  // depend on them).
  cases[1].name = "embedding_backward (deterministic) " + shape;
  cases[1].bytes = rows_bytes + 2 * distinct_bytes + 4 * n;
  cases[1].run = [b, n, vocab, dim, workspace_bytes](cudaStream_t s) {
    return cuda::embedding_backward(b->table.data(), b->rows.data(), b->ids.data(), n, vocab, dim,
                                    b->workspace.data(), workspace_bytes, s);
  };
  cases[2].name = "embedding_backward_atomic " + shape;
  cases[2].bytes = cases[1].bytes;
  cases[2].run = [b, n, dim](cudaStream_t s) {
    return cuda::embedding_backward_atomic(b->table.data(), b->rows.data(), b->ids.data(), n, dim, s);
  };
  // vocabulary parallelism's lookups and gradients: the deterministic sum with source rows by index
  cases[3].name = "scatter_add_rows " + shape;
  cases[3].bytes = cases[1].bytes + 4 * n;
  cases[3].run = [b, n, vocab, dim, workspace_bytes](cudaStream_t s) {
    return cuda::scatter_add_rows(b->table.data(), b->rows.data(), b->ids.data(), b->src_rows.data(), n, vocab, dim,
                                  b->workspace.data(), workspace_bytes, s);
  };
  for (KernelCase& c : cases) c.buffers = b;
  return cases;
}

struct BagBuffers {
  simt::DeviceBuffer<float> table, out;
  simt::DeviceBuffer<int32_t> ids, offsets;
};

// Bags: 32768 items x 8 feature ids of 1024 floats (1 GiB of gathered rows), vocabulary 200000.
std::vector<KernelCase> bag_cases() {
  const int64_t n_bags = 32768, bag_size = 8, dim = 1024, n_ids = n_bags * bag_size;
  const int32_t vocab = 200000;
  const std::vector<int32_t> ids = random_ids(n_ids, vocab, 4);
  std::vector<int32_t> offsets(static_cast<size_t>(n_bags + 1));
  for (int64_t b = 0; b <= n_bags; ++b) offsets[b] = static_cast<int32_t>(b * bag_size);
  auto b = std::make_shared<BagBuffers>(BagBuffers{
      simt::DeviceBuffer<float>(random_floats(static_cast<size_t>(vocab * dim), 5)),
      simt::DeviceBuffer<float>(static_cast<size_t>(n_bags * dim)), simt::DeviceBuffer<int32_t>(ids),
      simt::DeviceBuffer<int32_t>(offsets)});
  KernelCase c;
  c.name = "embedding_bag_forward (mean) " + std::to_string(n_bags) + " bags x " +
           std::to_string(bag_size) + " x " + std::to_string(dim);
  c.bytes = distinct(ids, vocab) * dim * 4 + n_bags * dim * 4 + 4 * (n_ids + n_bags + 1);
  c.run = [b, n_bags, dim](cudaStream_t s) {
    return cuda::embedding_bag_forward(b->out.data(), b->table.data(), b->ids.data(),
                                       b->offsets.data(), n_bags, dim, ops::EmbeddingBagMode::kMean, s);
  };
  c.buffers = b;
  return {c};
}

std::vector<KernelCase> embedding_cases() {
  std::vector<KernelCase> cases = token_cases();
  std::vector<KernelCase> bags = bag_cases();
  cases.insert(cases.end(), bags.begin(), bags.end());
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("embedding", &embedding_cases);

}  // namespace
}  // namespace reclm::bench
