#include "data/rec_dataset.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/errors.h"

namespace reclm {

SplitView split_view(const UserSequences& users, int64_t user, Split split) {
  RECLM_CHECK(user >= 0 && user < users.size(), "user {} of {}", user, users.size());
  const std::span<const int32_t> all = users.history(user);
  const size_t n = all.size();
  SplitView view;
  if (n < 3) {  // too short to hold anything out: everything trains, nothing is evaluated
    if (split == Split::kTrain) view.history = all;
    return view;
  }
  switch (split) {
    case Split::kTrain:
      view.history = all.first(n - 2);
      break;
    case Split::kValidation:
      view.history = all.first(n - 2);
      view.target = all[n - 2];
      view.has_target = true;
      break;
    case Split::kTest:
      view.history = all.first(n - 1);
      view.target = all[n - 1];
      view.has_target = true;
      break;
  }
  return view;
}

std::vector<int32_t> training_items(const UserSequences& users) {
  std::vector<int32_t> out;
  out.reserve(users.items.size());
  for (int64_t u = 0; u < users.size(); ++u) {
    const auto train = split_view(users, u, Split::kTrain).history;
    out.insert(out.end(), train.begin(), train.end());
  }
  return out;
}

std::string describe_statistics(const RecDataset& dataset) {
  const int64_t n_users = dataset.users.size();
  const int64_t n_items = dataset.items.size();
  const auto n_interactions = static_cast<int64_t>(dataset.users.items.size());
  int64_t shortest = 0;
  int64_t longest = 0;
  for (int64_t u = 0; u < n_users; ++u) {
    const auto n = static_cast<int64_t>(dataset.users.history(u).size());
    shortest = u == 0 ? n : std::min(shortest, n);
    longest = std::max(longest, n);
  }
  const double mean = n_users > 0 ? static_cast<double>(n_interactions) / n_users : 0.0;
  const double density = n_users > 0 && n_items > 0
                             ? static_cast<double>(n_interactions) /
                                   (static_cast<double>(n_users) * static_cast<double>(n_items))
                             : 0.0;
  std::string out;
  out += fmt::format("users         {}\n", n_users);
  out += fmt::format("items         {}\n", n_items);
  out += fmt::format("interactions  {}\n", n_interactions);
  out += fmt::format("mean history  {:.2f} items (shortest {}, longest {})\n", mean, shortest,
                     longest);
  out += fmt::format("density       {:.4f}%\n", 100.0 * density);
  return out;
}

}  // namespace reclm
