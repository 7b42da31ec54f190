// EvalReport as a text table (for people) and JSON (for scripts and results files).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "trainer/evaluator.h"

namespace reclm {

namespace {

struct MetricRow {
  std::string name;
  double model = 0;
  double popularity = 0;
};

// HR@k for each k, then NDCG@k for each k, then MRR: the order of published tables.
std::vector<MetricRow> metric_rows(const EvalReport& report) {
  std::vector<MetricRow> rows;
  const size_t n = std::min(report.model.at_k.size(), report.popularity.at_k.size());
  for (size_t i = 0; i < n; ++i) {
    rows.push_back({fmt::format("HR@{}", report.model.at_k[i].k), report.model.at_k[i].hit_rate,
                    report.popularity.at_k[i].hit_rate});
  }
  for (size_t i = 0; i < n; ++i) {
    rows.push_back({fmt::format("NDCG@{}", report.model.at_k[i].k), report.model.at_k[i].ndcg,
                    report.popularity.at_k[i].ndcg});
  }
  rows.push_back({"MRR", report.model.mrr, report.popularity.mrr});
  return rows;
}

}  // namespace

std::string EvalReport::table() const {
  std::string out = fmt::format("split {} · mode {} · {} users · history items {} · {:.1f} s\n",
                                split, mode, n_users, exclude_history ? "excluded" : "included",
                                seconds);
  out += fmt::format("{:<10} {:>10} {:>12} {:>8}\n", "metric", "model", "popularity", "ratio");
  for (const MetricRow& row : metric_rows(*this)) {
    const std::string ratio =
        row.popularity > 0 ? fmt::format("{:.2f}x", row.model / row.popularity) : "-";
    out += fmt::format("{:<10} {:>10.4f} {:>12.4f} {:>8}\n", row.name, row.model, row.popularity,
                       ratio);
  }
  return out;
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json model_json = nlohmann::json::object();
  nlohmann::json popularity_json = nlohmann::json::object();
  nlohmann::json ratio_json = nlohmann::json::object();
  for (const MetricRow& row : metric_rows(*this)) {
    model_json[row.name] = row.model;
    popularity_json[row.name] = row.popularity;
    ratio_json[row.name] =
        row.popularity > 0 ? nlohmann::json(row.model / row.popularity) : nlohmann::json(nullptr);
  }
  return {{"split", split},           {"mode", mode},
          {"exclude_history", exclude_history},
          {"ks", ks},                 {"n_users", n_users},
          {"seconds", seconds},       {"model", model_json},
          {"popularity", popularity_json},
          {"ratio", ratio_json}};
}

}  // namespace reclm
