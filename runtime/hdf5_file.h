// A thin layer over the HDF5 C API for reclm's own files (prepared datasets, model weights):
// numeric datasets of any rank, variable-length UTF-8 string arrays, a scalar string, and scalar
// root attributes — each failure an error naming the file and the object, never HDF5's own
// error-stack dump (automatic printing is switched off for the calling thread).
//
// Object names are absolute paths ("/users/items"); writing creates the groups on the way.
// Zero-length arrays are stored as zero-size datasets (h5py reads them as empty arrays).
// Variable-length C strings end at the first NUL byte, so a string holding one is refused.
//
// Errors: opening or reading a file is bad user input (UserError "FILE: dataset /x/y: missing",
// "... : not an HDF5 file", "... : truncated or corrupt"); so is a failed write (disk full,
// unwritable directory), which is the user's environment rather than a bug.
//
// Thread safety: Debian's libhdf5 is built thread-safe (H5_HAVE_THREADSAFE); with a build that
// is not, keep to one HDF5 file operation at a time per process.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace reclm::hdf5 {

// Owns one HDF5 identifier and releases it with its type's close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  hid_t release() {  // the caller closes it now
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Big numeric arrays may be stored chunked with shuffle + deflate (level 1: several times
// smaller id arrays, decompression far faster than the disk); small ones stay contiguous.
enum class Compression { kNone, kDeflate };

// Creates (truncates) `file`; messages name `display_name` (the final path when writing a .tmp).
class Writer {
 public:
  Writer(const std::filesystem::path& file, std::string display_name);

  // shape empty: 1-D of values.size(); else product(shape) must equal values.size().
  void write(const std::string& name, std::span<const int32_t> values,
             Compression compression = Compression::kNone, std::vector<int64_t> shape = {});
  void write(const std::string& name, std::span<const int64_t> values,
             Compression compression = Compression::kNone, std::vector<int64_t> shape = {});
  void write(const std::string& name, std::span<const float> values,
             Compression compression = Compression::kNone, std::vector<int64_t> shape = {});
  void write_strings(const std::string& name, const std::vector<std::string>& values);
  void write_string(const std::string& name, std::string_view value);  // scalar dataset

  // Scalar attributes of the root group.
  void set_attribute(const std::string& name, int64_t value);
  void set_attribute_u64(const std::string& name, uint64_t value);
  void set_attribute(const std::string& name, std::string_view value);

  // Closes the file, reporting a failed final flush (the destructor cannot).
  void close();

 private:
  void write_numeric(const std::string& name, hid_t file_type, hid_t memory_type,
                     const void* data, int64_t count, Compression compression,
                     std::vector<int64_t> shape);
  void write_scalar_attribute(const std::string& name, hid_t file_type, hid_t memory_type,
                              const void* value);
  Handle file_;
  Handle link_props_;  // creates intermediate groups
  std::string name_;
};

// Opens `file` read-only; a missing file, a non-HDF5 file or one HDF5 cannot open (truncated,
// corrupt) is a UserError naming it.
class Reader {
 public:
  explicit Reader(const std::filesystem::path& file);

  const std::string& file_name() const { return name_; }
  bool has_dataset(const std::string& name) const;
  bool has_attribute(const std::string& name) const;
  // Names of the datasets directly under the root group, in name order.
  std::vector<std::string> root_dataset_names() const;
  // The dataset's dimensions; std::nullopt when it does not exist.
  std::optional<std::vector<int64_t>> shape(const std::string& name) const;

  // 1-D arrays; the stored type must be exactly the asked-for one (int32 / int64 / float32).
  std::vector<int32_t> read_int32(const std::string& name) const;
  std::vector<int64_t> read_int64(const std::string& name) const;
  std::vector<float> read_float32(const std::string& name) const;
  // Any rank; `out` must hold exactly the dataset's element count.
  void read_float32_into(const std::string& name, std::span<float> out) const;
  std::vector<std::string> read_strings(const std::string& name) const;  // 1-D
  std::string read_string(const std::string& name) const;                 // scalar

  // Scalar root attributes (any integer width / any string kind).
  int64_t attribute_int64(const std::string& name) const;
  uint64_t attribute_u64(const std::string& name) const;
  std::string attribute_string(const std::string& name) const;

  // UserError "FILE: dataset NAME: missing" / "FILE: attribute NAME: missing".
  Handle open_dataset(const std::string& name) const;
  Handle open_attribute(const std::string& name) const;

 private:
  Handle file_;
  std::string name_;
};

// Writes `path` atomically: `body` fills PATH.tmp, which is closed, fsynced and renamed over
// PATH. On any failure PATH.tmp is removed and an existing PATH is left untouched.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(Writer&)>& body);

}  // namespace reclm::hdf5
