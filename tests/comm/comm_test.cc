// The single-process Communicator and the factory's choice without a launcher. The MPI one is
// tested under mpirun by mpi_collectives_test.cc (ctest label `mpi`).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

// Sets an environment variable for the life of the object, restoring the old value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

const std::vector<float> kValues = {1.5f, -2.25f, 3e-8f, 7e20f, -0.1f, 42.0f, 1.0f / 3.0f};

TEST(LocalCommunicator, IsRankZeroOfOne) {
  auto comm = make_local_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->local_rank(), 0);
  EXPECT_EQ(comm->describe(), "single process");
}

TEST(LocalCommunicator, AllReduceLeavesTheDataAsItIsForEveryOp) {
  auto comm = make_local_communicator();
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    std::vector<float> data = kValues;
    comm->all_reduce(data.data(), static_cast<int64_t>(data.size()), op);
    EXPECT_EQ(0, std::memcmp(data.data(), kValues.data(), data.size() * sizeof(float)));

    std::vector<double> doubles = {1e300, -3.5, 1.0 / 7.0};
    const std::vector<double> expected = doubles;
    comm->all_reduce(doubles.data(), static_cast<int64_t>(doubles.size()), op);
    EXPECT_EQ(doubles, expected);
  }
}

TEST(LocalCommunicator, ReduceScatterAndAllGatherCopyTheOneBlock) {
  auto comm = make_local_communicator();
  const auto n = static_cast<int64_t>(kValues.size());
  std::vector<float> out(kValues.size(), 0.0f);
  comm->reduce_scatter(kValues.data(), out.data(), n, ReduceOp::kAvg);
  EXPECT_EQ(out, kValues);

  std::vector<float> gathered(kValues.size(), 0.0f);
  comm->all_gather(kValues.data(), gathered.data(), n);
  EXPECT_EQ(gathered, kValues);

  // In place: `in` is rank 0's block of `out`.
  std::vector<float> in_place = kValues;
  comm->all_gather(in_place.data(), in_place.data(), n);
  EXPECT_EQ(in_place, kValues);
}

TEST(LocalCommunicator, BroadcastFromRankZeroKeepsTheBytesAndOtherRootsAreRefused) {
  auto comm = make_local_communicator();
  std::string bytes = "payload";
  comm->broadcast(bytes.data(), static_cast<int64_t>(bytes.size()), 0);
  EXPECT_EQ(bytes, "payload");
  const std::string message = thrown_message<InternalError>(
      [&] { comm->broadcast(bytes.data(), static_cast<int64_t>(bytes.size()), 1); });
  EXPECT_NE(message.find("root 1"), std::string::npos) << message;
  comm->barrier();
}

TEST(LocalCommunicator, NegativeCountsAreRefused) {
  auto comm = make_local_communicator();
  float value = 1.0f;
  thrown_message<InternalError>([&] { comm->all_reduce(&value, -1, ReduceOp::kSum); });
}

TEST(LocalCommunicatorDeathTest, AbortPrintsTheMessageAndExitsWithTheCode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto comm = make_local_communicator();
  EXPECT_EXIT(comm->abort(3, "checkpoint write failed"), ::testing::ExitedWithCode(3),
              "error: checkpoint write failed");
}

TEST(MakeCommunicator, WithoutALauncherIsTheSingleProcess) {
  ScopedEnv ompi("OMPI_COMM_WORLD_SIZE", nullptr);
  ScopedEnv pmi("PMI_SIZE", nullptr);
  ScopedEnv pmix("PMIX_RANK", nullptr);
  auto comm = make_communicator();
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->describe(), "single process");
}

TEST(MakeCommunicator, ANonPositiveTimeoutIsAUserErrorNamingTheField) {
  CommOptions options;
  options.timeout_s = 0;
  const std::string message = thrown_message<UserError>([&] { make_communicator(options); });
  EXPECT_NE(message.find("runtime.comm_timeout_s"), std::string::npos) << message;
}

#if !RECLM_HAVE_MPI
TEST(MakeCommunicator, UnderALauncherWithoutMpiIsAUserErrorSayingSo) {
  ScopedEnv ompi("OMPI_COMM_WORLD_SIZE", "2");
  const std::string message = thrown_message<UserError>([] { make_communicator(); });
  EXPECT_NE(message.find("OMPI_COMM_WORLD_SIZE"), std::string::npos) << message;
  EXPECT_NE(message.find("without MPI"), std::string::npos) << message;
}
#endif

}  // namespace
}  // namespace reclm
