#include "trainer/train_loop.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>

#include "kernels/ops.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "runtime/progress.h"
#include "runtime/timer.h"
#include "trainer/data_parallel.h"
#include "trainer/device_backend.h"
#include "trainer/device_hidden_states.h"
#include "trainer/grad_buckets.h"
#include "trainer/model.h"
#include "trainer/model_flops.h"
#include "trainer/optimizer.h"
#include "trainer/schedule.h"
#include "trainer/vocab_parallel.h"
#include "trainer/vocab_tables.h"
#include "trainer/weights_file.h"
#include "trainer/zero1.h"

namespace reclm {

namespace {

// The host model's activation arena when a device trains (tokens): enough for the ranking
// evaluation's prompts, which the evaluator packs into as many forwards as needed.
constexpr int64_t kHostArenaTokensWithDevice = 4096;

// Append-only metrics log; one JSON object per line, flushed so a crash loses nothing.
class MetricsLog {
 public:
  explicit MetricsLog(const std::filesystem::path& path) {
    if (std::filesystem::exists(path)) {
      log_warn("appending to existing {} (earlier runs' lines are kept)", path.string());
    }
    file_ = std::fopen(path.c_str(), "a");
    RECLM_USER_CHECK(file_ != nullptr, "train.run_dir: cannot write {}", path.string());
  }
  ~MetricsLog() { std::fclose(file_); }
  void write(const nlohmann::json& record) {
    const std::string line = record.dump() + "\n";
    RECLM_USER_CHECK(std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
                         std::fflush(file_) == 0,
                     "writing metrics.jsonl failed (disk full?)");
  }

 private:
  std::FILE* file_ = nullptr;
};

std::filesystem::path prepare_run_dir(const Config& config) {
  const std::filesystem::path dir = config.train().run_dir();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  RECLM_USER_CHECK(!error, "train.run_dir: cannot create \"{}\": {}", dir.string(), error.message());
  // Written to a temporary name and renamed, so an interrupted write never leaves half a file.
  const auto tmp = dir / "config.pbtxt.tmp";
  {
    std::ofstream out(tmp);
    out << config_to_text(config);
    RECLM_USER_CHECK(out.good(), "train.run_dir: cannot write {}", tmp.string());
  }
  std::filesystem::rename(tmp, dir / "config.pbtxt");
  return dir;
}

// Every rank runs its share of each held-out batch (BatchSource::val_batch) and the sums are
// reduced, so the value depends on the global batch, not on the number of ranks (beyond
// summation order), and every rank runs the same forwards (vocabulary parallelism needs that).
double validation_loss(Model& model, DeviceBackend* device, const BatchSource& source, int n_batches,
                       Communicator* comm) {
  double sums[2] = {0.0, 0.0};  // loss, weight
  for (int i = 0; i < n_batches; ++i) {
    const Batch batch = source.val_batch(i);
    sums[0] += device ? device->forward_loss(batch) : forward_loss(model, batch);
    for (float w : batch.loss_weights) sums[1] += w;
  }
  sum_over_ranks(comm, sums, 2);
  return sums[1] > 0.0 ? sums[0] / sums[1] : 0.0;
}

}  // namespace

TrainResult train(const Config& config, const BatchSource& source, const TrainHooks& hooks) {
  const auto& tc = config.train();
  const int threads = ops::set_cpu_threads(config.runtime().threads());
  ModelDims dims = model_dims(config.model());
  dims.first_new_token = hooks.first_new_token;
  RECLM_USER_CHECK(dims.vocab >= source.min_vocab_size(),
                   "field model.vocab_size: {} is smaller than the data's vocabulary ({})",
                   dims.vocab, source.min_vocab_size());

  Communicator* comm = hooks.comm;
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  if (config.runtime().vocab_parallel() && world > 1) {
    RECLM_USER_CHECK(hooks.item_end > hooks.item_begin,
                     "field runtime.vocab_parallel: the data has no item tokens to shard (it "
                     "needs a recommendation dataset)");
    dims.vocab_shard = make_vocab_shard(dims.vocab, hooks.item_begin, hooks.item_end, rank, world);
  }
  // runtime.device "cuda": the host model only evaluates (ranking), so its activation arena is
  // capped; the device plans for the whole micro-batch.
  const bool on_device = config.runtime().device() == "cuda";
  Model model(dims, on_device ? std::min<int64_t>(source.max_batch_tokens(), kHostArenaTokensWithDevice)
                              : source.max_batch_tokens());
  model.comm = comm;
  init_weights(model, config.runtime().seed(), config.model().init_std());
  // ZeRO-1 (trainer/zero1.h): this rank's optimizer holds and updates only its shard.
  std::optional<Zero1Exchange> zero1;
  if (config.optim().zero1() && world > 1) zero1.emplace(model.layout, *comm);
  AdamW optimizer = zero1 ? AdamW(model.layout, config.optim(), zero1->shard())
                          : AdamW(model.layout, config.optim());
  // Plain data parallelism: gradient buckets all-reduced during the last micro-batch's backward
  // (on the device: the backend's own, over its gradient buffer).
  std::optional<GradientBuckets> buckets;
  const double bucket_mb = config.runtime().grad_bucket_mb();
  const bool bucketed = world > 1 && !zero1 && bucket_mb > 0;
  const auto bucket_floats = std::max<int64_t>(1, std::llround(bucket_mb * (1 << 20) / 4));
  size_t n_buckets = 0;
  if (bucketed && !on_device) {
    buckets.emplace(model.layout, dims.n_layers, *comm, bucket_floats);
    n_buckets = buckets->buckets().size();
  }
  TrainProgress progress;
  if (hooks.restore) hooks.restore(model, optimizer, progress);
  // runtime.device "cuda" (trainer/device_backend.h): the step runs on the device; the host
  // model gets the device's state back before checkpoints, ranking evaluation and the end.
  std::unique_ptr<DeviceBackend> device;
  double peak_tflops = 0.0;
  if (on_device) {
    device = make_device_backend(model, optimizer,
                                 {.max_tokens = source.max_batch_tokens(),
                                  .local_rank = comm ? comm->local_rank() : 0,
                                  .recompute_activations = config.runtime().recompute_activations(),
                                  .fp32_logits = config.runtime().fp32_logits(),
                                  .bf16_residual = config.runtime().bf16_residual(),
                                  .second_stream = config.runtime().second_stream(),
                                  .gemm_autotune = config.runtime().gemm_autotune(),
                                  .optim = config.optim(),
                                  .comm = comm});
    device->upload(model, optimizer);
    const DeviceInfo info = device->info();
    peak_tflops = config.runtime().peak_tflops() > 0 ? config.runtime().peak_tflops() : peak_bf16_tflops(info.name);
    log_info("device: {}{}, {:.2f} GiB planned for weights, gradients, moments and activations{}{}{}", info.name,
             info.total_bytes > 0 ? fmt::format(" ({:.1f} GiB)", info.total_bytes / 1073741824.0) : "",
             info.planned_bytes / 1073741824.0,
             config.runtime().recompute_activations() ? " (recomputed in backward)" : "",
             config.runtime().bf16_residual() ? ", the residual stream in bf16" : "",
             peak_tflops > 0 ? fmt::format("; bf16 peak {:.0f} TFLOP/s for MFU", peak_tflops)
                             : "; unknown bf16 peak (set runtime.peak_tflops for MFU)");
    if (bucketed) n_buckets = device->enable_gradient_buckets(*comm, bucket_floats);
  }
  // runtime.queued_steps: each step queued before the host reads the one before it
  const bool queued = device && config.runtime().queued_steps() && world == 1 && device->can_queue_steps();
  if (device && config.runtime().queued_steps()) {
    if (queued) {
      log_info("device: each step is queued before the host reads the last one's loss and gradient norm "
               "(runtime.queued_steps)");
    } else {
      log_info("device: the host reads each step's loss and gradient norm before the next (runtime.queued_steps "
               "is for one process without ZeRO-1 or vocabulary parallelism)");
    }
  }
  const bool lead = rank == 0;  // writes the run directory; every rank trains
  const std::filesystem::path run_dir =
      lead ? prepare_run_dir(config) : std::filesystem::path(config.train().run_dir());
  std::optional<MetricsLog> metrics_log;
  if (lead) metrics_log.emplace(run_dir / "metrics.jsonl");
  const auto write_metrics = [&](const nlohmann::json& record) {
    if (metrics_log) metrics_log->write(record);
  };

  TrainResult result;
  result.first_step = progress.step;
  result.steps = progress.step;
  result.skipped_steps = progress.skipped_steps;
  result.num_parameters = model.layout.num_parameters();
  log_info("model: {:.2f}M parameters ({}), {} layers, d_model {}, {} heads ({} kv), d_ff {}, vocab {}",
           result.num_parameters / 1e6, result.num_parameters, dims.n_layers, dims.d_model,
           dims.n_heads, dims.n_kv_heads, dims.d_ff, dims.vocab);
  log_info("data: {}", source.describe());
  if (zero1) {
    log_info("zero1: optimizer state sharded over {} ranks; this rank owns canonical values "
             "[{}, {}) ({} trainable)", world, zero1->shard().begin, zero1->shard().end,
             segment_values(shard_update_segments(model.layout, zero1->shard())));
  }
  if (dims.vocab_parallel()) {
    log_info("vocab_parallel: this rank holds item rows [{}, {}) ({} of {} items) of the embedding{}",
             dims.vocab_shard.own_begin, dims.vocab_shard.own_end, dims.vocab_shard.n_own(),
             dims.vocab_shard.n_items(), dims.tied ? " (tied head)" : " and the LM head");
  } else if (config.runtime().vocab_parallel()) {
    log_info("runtime.vocab_parallel: no effect in a single process");
  }
  if (bucketed) {
    log_info("gradients: {} buckets of ~{} MiB (runtime.grad_bucket_mb), all-reduced during backward",
             n_buckets, bucket_mb);
  } else if (world > 1 && !zero1) {
    log_info("gradients: one all-reduce after backward (runtime.grad_bucket_mb: 0)");
  }
  log_info("train: {} steps × {} micro-batches × {} tokens{}, {} threads, run dir {}", tc.steps(),
           tc.grad_accum(), source.max_batch_tokens(),
           world > 1 ? fmt::format(" × {} ranks", world) : "", threads, run_dir.string());

  if (progress.step > 0) {
    log_info("continuing at step {} of {} ({} tokens seen)", progress.step + 1, tc.steps(),
             progress.tokens_seen);
  }
  write_metrics({{"kind", "run_start"}, {"steps", tc.steps()}, {"first_step", progress.step},
                 {"parameters", result.num_parameters}, {"threads", threads}, {"ranks", world},
                 {"unix_time", static_cast<int64_t>(std::time(nullptr))}});
  ProgressBar bar(tc.steps(), "train");
  const bool draw = lead && bar.is_terminal();  // only rank 0 draws the bar
  if (draw) bar.update(progress.step, "");
  Stopwatch run_clock;
  const int val_every = config.eval().val_every();
  int rank_every = hooks.rank_eval ? config.eval().rank_every() : 0;
  if (rank_every > 0 && dims.vocab_parallel()) {  // ranking scores every item on one rank
    log_warn("eval.rank_every: no ranking evaluation during training under runtime.vocab_parallel "
             "(each rank holds only its items); run `reclm eval` on the saved model");
    rank_every = 0;
  }
  if (rank_every > 0 && device) {
    log_info("eval.rank_every: item scores come from the device's forward (beam search and title "
             "likelihood run on the host)");
  }
  const auto make_batches = [&source, &tc](int64_t step) {
    std::vector<Batch> batches;
    for (int micro = 0; micro < tc.grad_accum(); ++micro) batches.push_back(source.train_batch(step, micro));
    return batches;
  };
  // With a device, the next step's batches are made on a second thread while the device works
  // on this one (on the CPU backend the cores are busy with the step itself). Batches are pure
  // functions of (step, micro), so this changes nothing but the time.
  std::future<std::vector<Batch>> next_batches;
  // What the host knows of a step before its loss and gradient norm: with queued steps these come
  // once the next step is queued (runtime.queued_steps, DeviceBackend::queue_update).
  struct StepInfo {
    int64_t step = 0;
    double total_weight = 0.0, flops = 0.0, data_wait_seconds = 0.0;
    int64_t tokens = 0;
    float lr = 0.0f;
  };
  // The end of a step once its loss and norm are known and its update has run (or was skipped,
  // when they are not finite): train.on_nonfinite (STOP throws), the result, the metrics line and
  // the log line. `seconds`: the step's time.
  const auto finish_step = [&](const StepInfo& info, double loss, double norm, double seconds, double comm_seconds,
                               const std::optional<OverlapStats>& overlap) {
    const int64_t step = info.step;
    const bool finite = std::isfinite(loss) && std::isfinite(norm);
    if (!finite && tc.on_nonfinite() == config::TrainConfig::STOP) {
      // A NaN's sign bit only records which NaN operand an addition kept, and queued and read
      // steps meet the norm's partial sums in different orders: the message shows every NaN as nan.
      const auto shown = [](double v) { return std::isnan(v) ? std::fabs(v) : v; };
      throw TrainingDiverged(fmt::format(
          "non-finite {} at step {} (loss {}, grad norm {}); lower train.lr or set "
          "train.on_nonfinite: SKIP",
          std::isfinite(loss) ? "gradient" : "loss", step + 1, shown(loss), shown(norm)));
    }
    if (!finite) {
      ++result.skipped_steps;
      log_warn("step {}: non-finite loss/gradient, update skipped ({} so far)", step + 1,
               result.skipped_steps);
    }
    result.losses.push_back(loss);
    result.steps = step + 1;
    progress = {step + 1, progress.tokens_seen + info.tokens, result.skipped_steps, info.lr};
    const double model_tflops = info.flops / seconds / 1e12;
    const double tokens_per_s = info.tokens / seconds;
    write_metrics({{"kind", "train"}, {"step", step + 1}, {"loss", loss}, {"lr", info.lr},
                   {"grad_norm", norm}, {"tokens", info.tokens}, {"tokens_per_s", tokens_per_s},
                   {"ms_per_step", seconds * 1e3}, {"data_ms", info.data_wait_seconds * 1e3},
                   {"comm_ms", comm_seconds * 1e3},
                   {"model_tflops", model_tflops}, {"mfu", peak_tflops > 0 ? model_tflops / world / peak_tflops : 0.0},
                   {"device_mem_mb", device ? device->info().planned_bytes / 1048576.0 : 0.0},
                   {"overlap", overlap ? overlap->overlap() : 0.0},
                   {"peak_rss_mb", peak_rss_mib()},
                   {"time_s", run_clock.seconds()}, {"skipped", !finite}});
    const std::string status = fmt::format("loss {:.4f} | {:.0f} tok/s", loss, tokens_per_s);
    if ((step + 1) % tc.log_every() == 0 || step == 0 || step + 1 == tc.steps()) {
      const std::string line = fmt::format(
          "step {:>6}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s | {:.1f} ms/step{}{} | peak {:.0f} MiB",
          step + 1, tc.steps(), loss, info.lr, norm, tokens_per_s, seconds * 1e3,
          peak_tflops > 0 ? fmt::format(" | MFU {:.1f}%", 100.0 * model_tflops / world / peak_tflops) : "",
          world > 1 ? fmt::format(" ({:.1f} comm{})", comm_seconds * 1e3,
                                  overlap ? fmt::format(", {:.0f}% overlapped", 100 * overlap->overlap())
                                          : "")
                    : "",
          peak_rss_mib());
      if (draw) bar.print_above(line); else log_info("{}", line);
    }
    if (draw) bar.update(step + 1, status);
  };
  // Queued steps: the step queued last whose loss and norm are not read yet, read by
  // finish_queued_step (its time is the device's, plus the host's wait for its batches when it
  // did not follow the step before on the device).
  std::optional<StepInfo> unread;
  const auto finish_queued_step = [&] {
    const StepInfo info = *unread;
    unread.reset();
    const DeviceBackend::QueuedStep done = device->read_queued_step();
    const double loss = info.total_weight > 0.0 ? done.loss_sum / info.total_weight : 0.0;
    const double seconds = done.device_ms / 1e3 + (done.queued_behind ? 0.0 : info.data_wait_seconds);
    finish_step(info, loss, done.grad_norm, seconds, 0.0, std::nullopt);
  };
  for (int64_t step = progress.step; step < tc.steps(); ++step) {
    Stopwatch step_clock;
    std::vector<Batch> batches = next_batches.valid() ? next_batches.get() : make_batches(step);
    const double data_wait_seconds = step_clock.seconds();  // making (or waiting for) the batches
    if (device && step + 1 < tc.steps()) next_batches = std::async(std::launch::async, make_batches, step + 1);
    // loss weight, tokens, model FLOPs (trainer/model_flops.h): this rank's, then the job's
    double counts[3] = {0.0, 0.0, 0.0};
    for (const Batch& batch : batches) {
      for (float w : batch.loss_weights) counts[0] += w;
      counts[1] += static_cast<double>(batch.n_tokens());
      counts[2] += training_flops(dims, batch).total();
    }
    double comm_seconds = 0.0;
    Stopwatch comm_clock;
    sum_over_ranks(comm, counts, 3);  // the mean is over the global batch
    comm_seconds += comm_clock.seconds();
    const double total_weight = counts[0];
    const float lr = learning_rate(tc, step);
    const StepInfo info{step, total_weight, counts[2], data_wait_seconds, static_cast<int64_t>(counts[1]), lr};
    if (device) device->zero_grads(); else zero_grads(model);
    double loss_sum = 0.0;
    const float grad_scale = total_weight > 0.0 ? static_cast<float>(1.0 / total_weight) : 0.0f;
    for (int micro = 0; micro < static_cast<int>(batches.size()); ++micro) {
      model.dropout = {config.model().dropout(), true, config.runtime().seed(),
                       dropout_stream(step, micro, tc.grad_accum(), rank, world)};
      const bool last = micro + 1 == static_cast<int>(batches.size());
      if (queued) {
        device->forward_backward_queued(batches[micro], grad_scale, last, model.dropout);
      } else {
        loss_sum += device ? device->forward_backward(batches[micro], grad_scale, last, model.dropout)
                           : forward_backward(model, batches[micro], grad_scale,
                                              buckets && last ? buckets->hook(model.grad_data()) : BackwardHook{});
      }
    }
    model.dropout.enabled = false;  // validation and evaluation see the whole network
    const bool last_step = step + 1 == tc.steps();
    const bool rank_now = rank_every > 0 && ((step + 1) % rank_every == 0 || last_step);
    const bool val_now = val_every > 0 && ((step + 1) % val_every == 0 || last_step);
    const bool checkpoint_now = hooks.after_step && checkpoint_due(config, step + 1, last_step);
    if (queued) {
      // The step before is read now that this one is queued (the device is busy with it), and
      // before this step's update, which a skipped step before it changes (AdamW's step count).
      if (unread) finish_queued_step();
      device->queue_update(lr, config.optim().grad_clip(), total_weight);
      unread = info;
      // What runs after the step on the host reads its results: then it is read at once.
      if (last_step || rank_now || val_now || checkpoint_now) finish_queued_step();
    } else {
      comm_clock = Stopwatch();
      std::optional<OverlapStats> overlap;
      if (device) {
        overlap = device->all_reduce_gradients(comm);
      } else if (zero1) {
        zero1->reduce_scatter_gradients(model);
      } else if (buckets) {
        overlap = buckets->finish(model.grad_data());
      } else {
        all_reduce_gradients(comm, model);
      }
      sum_over_ranks(comm, &loss_sum, 1);
      comm_seconds += comm_clock.seconds();
      const double loss = total_weight > 0.0 ? loss_sum / total_weight : 0.0;
      // ZeRO-1: each rank's shard, all-reduced (one double).
      const double norm = device ? device->grad_norm() : zero1 ? zero1->grad_norm(model) : job_grad_norm(comm, model);
      const bool finite = std::isfinite(loss) && std::isfinite(norm);  // (else no update: finish_step says why)
      if (finite && device) {
        device->adamw_step(lr, clip_coefficient(norm, config.optim().grad_clip()));
      } else if (finite) {
        optimizer.step(model, lr, clip_coefficient(norm, config.optim().grad_clip()));
        if (zero1) {  // every rank gets the shards the others updated
          comm_clock = Stopwatch();
          zero1->all_gather_parameters(model);
          comm_seconds += comm_clock.seconds();
        }
      }
      // (the device has finished: norm and loss were read)
      finish_step(info, loss, norm, step_clock.seconds(), comm_seconds, overlap);
    }

    if (val_now) {
      const double val = validation_loss(model, device.get(), source, config.eval().val_batches(), comm);
      result.val_losses.push_back(val);
      write_metrics({{"kind", "val"}, {"step", step + 1}, {"val_loss", val}});
      const std::string line = fmt::format("step {:>6}/{} | val loss {:.4f}", step + 1, tc.steps(), val);
      if (draw) bar.print_above(line); else log_info("{}", line);
    }
    if (device && (rank_now || checkpoint_now)) {
      device->download(model, &optimizer);  // what the evaluation and the checkpoint read
    }
    if (rank_now) {
      // On a device its forward computes the item scores' hidden states (the host arena is small)
      const HiddenStateSource device_hidden =
          device ? device_hidden_states(*device, source.max_batch_tokens()) : HiddenStateSource{};
      nlohmann::json ranking = hooks.rank_eval(model, device ? &device_hidden : nullptr);
      ranking["kind"] = "rank";
      ranking["step"] = step + 1;
      write_metrics(ranking);
      const std::string line = fmt::format(
          "step {:>6}/{} | {}", step + 1, tc.steps(),
          hooks.describe_rank ? hooks.describe_rank(ranking) : ranking.dump());
      if (draw) bar.print_above(line); else log_info("{}", line);
    }
    // (a queued step not read yet comes to the hook with the next one; its checkpoint was not due)
    if (hooks.after_step && progress.step == step + 1) hooks.after_step(model, optimizer, progress, last_step);
  }
  if (device) {
    // (the profile first: it covers the steps, not the download of the final weights)
    if (const std::string profile = device->profile_report(); !profile.empty())
      log_info("device profile (RECLM_DEVICE_PROFILE):{}", profile);
    device->download(model, &optimizer);  // the final weights
  }
  if (hooks.finish) hooks.finish();
  if (dims.vocab_parallel()) {  // the whole tables, assembled on rank 0
    std::optional<Model> whole;
    if (lead) whole.emplace(unsharded_dims(dims), 1);
    gather_unsharded(*comm, dims, model.param_data(), lead ? whole->param_data() : nullptr);
    if (lead) save_weights(run_dir / "model.h5", *whole, config_to_text(config));
  } else if (lead) {
    save_weights(run_dir / "model.h5", model, config_to_text(config));
  }
  const std::string final_loss =
      result.losses.empty() ? "no step run" : fmt::format("final loss {:.4f}", result.losses.back());
  if (draw) bar.finish(final_loss);
  log_info("done: {} steps in {:.1f} s, {}{}; metrics in {}", result.steps - result.first_step,
           run_clock.seconds(), final_loss,
           result.val_losses.empty() ? "" : fmt::format(", val loss {:.4f}", result.val_losses.back()),
           (run_dir / "metrics.jsonl").string());
  log_info("weights: {}", (run_dir / "model.h5").string());
  return result;
}

}  // namespace reclm
