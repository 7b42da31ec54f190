#include "runtime/hdf5_file.h"


#include <algorithm>
#include <cstring>

#include "runtime/atomic_file.h"
#include "runtime/errors.h"
#include "runtime/hdf5_internal.h"

namespace reclm::hdf5 {

namespace internal {

void silence_error_printing() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// HDF5's exit handler re-flushes files whose close already failed (a full disk, a file-size
// limit) and crashes inside libhdf5 1.10 (H5F__close_cb). Every file reclm opens is closed
// explicitly by its Handle and a failed close is reported, so the handler has nothing left to do:
// switch it off before the library initialises (it does so lazily, at the first HDF5 call).
const bool kNoHdf5ExitHandler = [] { return H5dont_atexit() >= 0; }();

std::string error_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* error, void* out) -> herr_t {
        if (n == 0 && error->desc != nullptr) *static_cast<std::string*>(out) = error->desc;
        return 0;
      },
      &detail);
  // A failed system call's description is a multi-line dump (time, buffer address, byte
  // counts); the OS error inside it is what a person needs.
  const std::string os_error = "error message = '";
  if (const size_t at = detail.find(os_error); at != std::string::npos) {
    const size_t begin = at + os_error.size();
    const size_t end = detail.find('\'', begin);
    if (end != std::string::npos) detail = "write failed: " + detail.substr(begin, end - begin);
  }
  return detail.empty() ? detail : " (" + detail + ")";
}

Handle vlen_string_type(H5T_cset_t cset) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), cset);
  return type;
}

void reclaim_strings(hid_t type, hid_t space, char** strings) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(type, space, H5P_DEFAULT, strings);
#else
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, strings);
#endif
}

std::string describe_type(hid_t type) {
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    case H5T_FLOAT:
      return fmt::format("float{}", bits);
    case H5T_STRING:
      return H5Tis_variable_str(type) > 0 ? "variable-length strings" : "fixed-length strings";
    default:
      return "a compound or other non-scalar type";
  }
}

Handle file_access_props() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
  H5Pset_file_locking(fapl.get(), true, true);
#endif
  return fapl;
}

}  // namespace internal

using namespace internal;

namespace {

// Arrays shorter than this stay contiguous: compression would save little and chunk metadata
// would cost more. Chunks of 64 Ki elements (256/512 KiB) fit HDF5's default 1 MiB chunk cache.
constexpr int64_t kMinCompressedElements = 4096;
constexpr hsize_t kChunkElements = 65536;

// kind: "dataset" or "attribute".
void check_no_nul(const std::string& file, const char* kind, const std::string& name,
                  std::string_view value, size_t index) {
  RECLM_USER_CHECK(value.find('\0') == std::string_view::npos,
                   "{}: {} {}: string {} contains a NUL byte, which HDF5 strings cannot hold", file,
                   kind, name, index);
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    close_ = other.close_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = -1;
}

// ---- Writer ----------------------------------------------------------------------------------

Writer::Writer(const std::filesystem::path& file, std::string display_name)
    : name_(std::move(display_name)) {
  silence_error_printing();
  const Handle fapl = file_access_props();
  file_ = Handle(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  RECLM_USER_CHECK(file_.valid(), "{}: cannot create {}{}", name_, file.string(), error_detail());
  link_props_ = Handle(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(link_props_.get(), 1);
}

void Writer::write_numeric(const std::string& name, hid_t file_type, hid_t memory_type,
                           const void* data, int64_t count, Compression compression,
                           std::vector<int64_t> shape) {
  if (shape.empty()) shape = {count};
  int64_t product = 1;
  for (int64_t d : shape) product *= d;
  RECLM_CHECK(product == count, "dataset {}: shape holds {} values, {} given", name, product,
              count);
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  const Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                     H5Sclose);
  const Handle create_props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (compression == Compression::kDeflate && dims.size() == 1 &&
      count >= kMinCompressedElements && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
    const hsize_t chunk = std::min<hsize_t>(dims[0], kChunkElements);
    H5Pset_chunk(create_props.get(), 1, &chunk);
    H5Pset_shuffle(create_props.get());  // byte planes of small ids are mostly zeros
    H5Pset_deflate(create_props.get(), 1);
  }
  const Handle dataset(H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(),
                                  link_props_.get(), create_props.get(), H5P_DEFAULT),
                       H5Dclose);
  RECLM_USER_CHECK(dataset.valid(), "{}: dataset {}: cannot create{}", name_, name,
                   error_detail());
  // A zero-size dataset has nothing to write (and H5Dwrite refuses a null buffer).
  if (count == 0) return;
  RECLM_USER_CHECK(
      H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
      "{}: dataset {}: write failed (disk full?){}", name_, name, error_detail());
}

void Writer::write(const std::string& name, std::span<const int32_t> values,
                   Compression compression, std::vector<int64_t> shape) {
  write_numeric(name, H5T_STD_I32LE, H5T_NATIVE_INT32, values.data(),
                static_cast<int64_t>(values.size()), compression, std::move(shape));
}

void Writer::write(const std::string& name, std::span<const int64_t> values,
                   Compression compression, std::vector<int64_t> shape) {
  write_numeric(name, H5T_STD_I64LE, H5T_NATIVE_INT64, values.data(),
                static_cast<int64_t>(values.size()), compression, std::move(shape));
}

void Writer::write(const std::string& name, std::span<const float> values,
                   Compression compression, std::vector<int64_t> shape) {
  write_numeric(name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values.data(),
                static_cast<int64_t>(values.size()), compression, std::move(shape));
}

void Writer::write_strings(const std::string& name, const std::vector<std::string>& values) {
  std::vector<const char*> pointers(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    check_no_nul(name_, "dataset", name, values[i], i);
    pointers[i] = values[i].c_str();
  }
  const Handle type = vlen_string_type(H5T_CSET_UTF8);
  const hsize_t n = values.size();
  const Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  const Handle dataset(H5Dcreate2(file_.get(), name.c_str(), type.get(), space.get(),
                                  link_props_.get(), H5P_DEFAULT, H5P_DEFAULT),
                       H5Dclose);
  RECLM_USER_CHECK(dataset.valid(), "{}: dataset {}: cannot create{}", name_, name,
                   error_detail());
  if (n == 0) return;
  RECLM_USER_CHECK(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                            pointers.data()) >= 0,
                   "{}: dataset {}: write failed (disk full?){}", name_, name, error_detail());
}

void Writer::write_string(const std::string& name, std::string_view value) {
  check_no_nul(name_, "dataset", name, value, 0);
  const std::string terminated(value);
  const char* pointer = terminated.c_str();
  const Handle type = vlen_string_type(H5T_CSET_UTF8);
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle dataset(H5Dcreate2(file_.get(), name.c_str(), type.get(), space.get(),
                                  link_props_.get(), H5P_DEFAULT, H5P_DEFAULT),
                       H5Dclose);
  RECLM_USER_CHECK(dataset.valid(), "{}: dataset {}: cannot create{}", name_, name,
                   error_detail());
  RECLM_USER_CHECK(
      H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &pointer) >= 0,
      "{}: dataset {}: write failed (disk full?){}", name_, name, error_detail());
}

void Writer::write_scalar_attribute(const std::string& name, hid_t file_type, hid_t memory_type,
                                    const void* value) {
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle attribute(
      H5Acreate2(file_.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  RECLM_USER_CHECK(attribute.valid(), "{}: attribute {}: cannot create{}", name_, name,
                   error_detail());
  RECLM_USER_CHECK(H5Awrite(attribute.get(), memory_type, value) >= 0,
                   "{}: attribute {}: write failed{}", name_, name, error_detail());
}

void Writer::set_attribute(const std::string& name, int64_t value) {
  write_scalar_attribute(name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void Writer::set_attribute_u64(const std::string& name, uint64_t value) {
  write_scalar_attribute(name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

// Variable-length string attributes keep their text in the global heap, so the 64 KiB limit on
// attribute messages does not bound them.
void Writer::set_attribute(const std::string& name, std::string_view value) {
  check_no_nul(name_, "attribute", name, value, 0);
  const std::string terminated(value);
  const char* pointer = terminated.c_str();
  const Handle type = vlen_string_type(H5T_CSET_UTF8);
  write_scalar_attribute(name, type.get(), type.get(), &pointer);
}

void Writer::close() {
  if (!file_.valid()) return;
  link_props_.reset();
  RECLM_USER_CHECK(H5Fclose(file_.release()) >= 0, "{}: closing the file failed (disk full?){}",
                   name_, error_detail());
}

// ---- atomic commit ---------------------------------------------------------------------------

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(Writer&)>& body) {
  replace_file_atomically(path, [&](const std::filesystem::path& tmp) {
    Writer writer(tmp, path.string());
    body(writer);
    writer.close();
  });
}

}  // namespace reclm::hdf5
