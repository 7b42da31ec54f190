// Reading side of runtime/hdf5_file.h. Stored types must be exactly what is asked for (an int64
// array is not silently narrowed to int32); byte order may differ (HDF5 converts it).
#include <algorithm>

#include "runtime/errors.h"
#include "runtime/hdf5_file.h"
#include "runtime/hdf5_internal.h"

namespace reclm::hdf5 {

using namespace internal;

namespace {

template <typename T>
struct Numeric;
template <>
struct Numeric<int32_t> {
  static constexpr H5T_class_t kClass = H5T_INTEGER;
  static constexpr const char* kLabel = "int32";
  static hid_t memory_type() { return H5T_NATIVE_INT32; }
};
template <>
struct Numeric<int64_t> {
  static constexpr H5T_class_t kClass = H5T_INTEGER;
  static constexpr const char* kLabel = "int64";
  static hid_t memory_type() { return H5T_NATIVE_INT64; }
};
template <>
struct Numeric<float> {
  static constexpr H5T_class_t kClass = H5T_FLOAT;
  static constexpr const char* kLabel = "float32";
  static hid_t memory_type() { return H5T_NATIVE_FLOAT; }
};

// Dimensions of a dataset's dataspace ({} for a scalar).
std::vector<int64_t> dims_of(const Reader& reader, const std::string& name, hid_t dataset) {
  const Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  RECLM_USER_CHECK(rank >= 0, "{}: dataset {}: unreadable dataspace (file corrupt){}",
                   reader.file_name(), name, error_detail());
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

int64_t element_count(const std::vector<int64_t>& dims) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  return count;
}

template <typename T>
void check_numeric_type(const Reader& reader, const std::string& name, hid_t dataset) {
  const Handle type(H5Dget_type(dataset), H5Tclose);
  const bool ok = type.valid() && H5Tget_class(type.get()) == Numeric<T>::kClass &&
                  H5Tget_size(type.get()) == sizeof(T) &&
                  (Numeric<T>::kClass != H5T_INTEGER || H5Tget_sign(type.get()) == H5T_SGN_2);
  RECLM_USER_CHECK(ok, "{}: dataset {}: stored as {}, expected {}", reader.file_name(), name,
                   type.valid() ? describe_type(type.get()) : "an unreadable type",
                   Numeric<T>::kLabel);
}

void read_all(const Reader& reader, const std::string& name, hid_t dataset, hid_t memory_type,
              void* out, int64_t count) {
  if (count == 0) return;  // zero-size dataset: nothing stored, nothing to read
  RECLM_USER_CHECK(H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0,
                   "{}: dataset {}: cannot read (file truncated or corrupt){}",
                   reader.file_name(), name, error_detail());
}

template <typename T>
std::vector<T> read_1d(const Reader& reader, const std::string& name) {
  const Handle dataset = reader.open_dataset(name);
  check_numeric_type<T>(reader, name, dataset.get());
  const std::vector<int64_t> dims = dims_of(reader, name, dataset.get());
  RECLM_USER_CHECK(dims.size() == 1, "{}: dataset {}: {} dimensions, expected a 1-D array",
                   reader.file_name(), name, dims.size());
  std::vector<T> values(dims[0]);
  read_all(reader, name, dataset.get(), Numeric<T>::memory_type(), values.data(), dims[0]);
  return values;
}

// Variable-length strings of a dataset with `expected_rank` dimensions (1: array, 0: scalar).
std::vector<std::string> read_vlen_strings(const Reader& reader, const std::string& name,
                                           size_t expected_rank) {
  const Handle dataset = reader.open_dataset(name);
  const Handle type(H5Dget_type(dataset.get()), H5Tclose);
  RECLM_USER_CHECK(type.valid() && H5Tget_class(type.get()) == H5T_STRING &&
                       H5Tis_variable_str(type.get()) > 0,
                   "{}: dataset {}: stored as {}, expected variable-length strings",
                   reader.file_name(), name,
                   type.valid() ? describe_type(type.get()) : "an unreadable type");
  const std::vector<int64_t> dims = dims_of(reader, name, dataset.get());
  RECLM_USER_CHECK(dims.size() == expected_rank, "{}: dataset {}: {} dimensions, expected {}",
                   reader.file_name(), name, dims.size(), expected_rank);
  const int64_t count = element_count(dims);
  std::vector<std::string> values(count);
  if (count == 0) return values;
  const Handle memory_type = vlen_string_type(H5Tget_cset(type.get()));
  const Handle space(H5Dget_space(dataset.get()), H5Sclose);
  std::vector<char*> pointers(count, nullptr);
  const herr_t status = H5Dread(dataset.get(), memory_type.get(), H5S_ALL, H5S_ALL,
                                H5P_DEFAULT, pointers.data());
  const std::string detail = status < 0 ? error_detail() : "";
  for (int64_t i = 0; i < count; ++i) {
    if (pointers[i] != nullptr) values[i] = pointers[i];
  }
  reclaim_strings(memory_type.get(), space.get(), pointers.data());
  RECLM_USER_CHECK(status >= 0, "{}: dataset {}: cannot read (file truncated or corrupt){}",
                   reader.file_name(), name, detail);
  return values;
}

// An attribute's type handle after checking it holds exactly one value of class `type_class`.
Handle single_value_type(const Reader& reader, const std::string& name, hid_t attribute,
                         H5T_class_t type_class, const char* expected) {
  Handle type(H5Aget_type(attribute), H5Tclose);
  RECLM_USER_CHECK(type.valid() && H5Tget_class(type.get()) == type_class,
                   "{}: attribute {}: stored as {}, expected {}", reader.file_name(), name,
                   type.valid() ? describe_type(type.get()) : "an unreadable type", expected);
  const Handle space(H5Aget_space(attribute), H5Sclose);
  RECLM_USER_CHECK(space.valid() && H5Sget_simple_extent_npoints(space.get()) == 1,
                   "{}: attribute {}: expected a single value", reader.file_name(), name);
  return type;
}

template <typename T>
T integer_attribute(const Reader& reader, const std::string& name, hid_t memory_type) {
  const Handle attribute = reader.open_attribute(name);
  single_value_type(reader, name, attribute.get(), H5T_INTEGER, "an integer");
  T value{};
  RECLM_USER_CHECK(H5Aread(attribute.get(), memory_type, &value) >= 0,
                   "{}: attribute {}: cannot read (file corrupt){}", reader.file_name(), name,
                   error_detail());
  return value;
}

}  // namespace

Reader::Reader(const std::filesystem::path& file) : name_(file.string()) {
  silence_error_printing();
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(file, error);
  RECLM_USER_CHECK(std::filesystem::exists(status), "{}: file not found", name_);
  RECLM_USER_CHECK(std::filesystem::is_regular_file(status), "{}: not a regular file", name_);
  const Handle access = file_access_props();
  file_ = Handle(H5Fopen(file.c_str(), H5F_ACC_RDONLY, access.get()), H5Fclose);
  if (file_.valid()) return;
  // Which failure it was: no HDF5 signature at all, or a signature HDF5 cannot get past.
  const std::string detail = error_detail();
  const htri_t is_hdf5 = H5Fis_hdf5(file.c_str());
  RECLM_USER_CHECK(is_hdf5 != 0, "{}: not an HDF5 file", name_);
  RECLM_USER_CHECK(is_hdf5 < 0, "{}: HDF5 file is truncated or corrupt{}", name_, detail);
  throw_user_error("{}: cannot open{}", name_, detail);
}

// H5Lexists fails rather than answering false when a parent group is missing, so each prefix
// of the path is checked in turn.
bool Reader::has_dataset(const std::string& name) const {
  for (size_t slash = name.find('/', 1);; slash = name.find('/', slash + 1)) {
    const std::string prefix = name.substr(0, slash);
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
  }
}

bool Reader::has_attribute(const std::string& name) const {
  return H5Aexists(file_.get(), name.c_str()) > 0;
}

std::vector<std::string> Reader::root_dataset_names() const {
  std::vector<std::string> names;
  H5Literate(
      file_.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t group, const char* name, const H5L_info_t*, void* out) -> herr_t {
        const Handle object(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
        if (object.valid() && H5Iget_type(object.get()) == H5I_DATASET) {
          static_cast<std::vector<std::string>*>(out)->push_back(name);
        }
        return 0;
      },
      &names);
  return names;
}

Handle Reader::open_dataset(const std::string& name) const {
  RECLM_USER_CHECK(has_dataset(name), "{}: dataset {}: missing", name_, name);
  Handle dataset(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  RECLM_USER_CHECK(dataset.valid(), "{}: dataset {}: cannot open (not a dataset, or corrupt){}",
                   name_, name, error_detail());
  return dataset;
}

Handle Reader::open_attribute(const std::string& name) const {
  RECLM_USER_CHECK(has_attribute(name), "{}: attribute {}: missing", name_, name);
  Handle attribute(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  RECLM_USER_CHECK(attribute.valid(), "{}: attribute {}: cannot open (file corrupt){}", name_,
                   name, error_detail());
  return attribute;
}

std::optional<std::vector<int64_t>> Reader::shape(const std::string& name) const {
  if (!has_dataset(name)) return std::nullopt;
  const Handle dataset = open_dataset(name);
  return dims_of(*this, name, dataset.get());
}

std::vector<int32_t> Reader::read_int32(const std::string& name) const {
  return read_1d<int32_t>(*this, name);
}

std::vector<int64_t> Reader::read_int64(const std::string& name) const {
  return read_1d<int64_t>(*this, name);
}

std::vector<float> Reader::read_float32(const std::string& name) const {
  return read_1d<float>(*this, name);
}

void Reader::read_float32_into(const std::string& name, std::span<float> out) const {
  const Handle dataset = open_dataset(name);
  check_numeric_type<float>(*this, name, dataset.get());
  const int64_t count = element_count(dims_of(*this, name, dataset.get()));
  RECLM_CHECK(count == static_cast<int64_t>(out.size()),
              "dataset {}: {} values stored, buffer holds {}", name, count, out.size());
  read_all(*this, name, dataset.get(), H5T_NATIVE_FLOAT, out.data(), count);
}

std::vector<std::string> Reader::read_strings(const std::string& name) const {
  return read_vlen_strings(*this, name, 1);
}

std::string Reader::read_string(const std::string& name) const {
  return read_vlen_strings(*this, name, 0).front();
}

int64_t Reader::attribute_int64(const std::string& name) const {
  return integer_attribute<int64_t>(*this, name, H5T_NATIVE_INT64);
}

uint64_t Reader::attribute_u64(const std::string& name) const {
  return integer_attribute<uint64_t>(*this, name, H5T_NATIVE_UINT64);
}

// Variable-length (what reclm and h5py write) or fixed-length (NUL- or space-padded) strings.
std::string Reader::attribute_string(const std::string& name) const {
  const Handle attribute = open_attribute(name);
  const Handle type = single_value_type(*this, name, attribute.get(), H5T_STRING, "a string");
  std::string value;
  herr_t status;
  if (H5Tis_variable_str(type.get()) > 0) {
    const Handle memory_type = vlen_string_type(H5Tget_cset(type.get()));
    const Handle space(H5Aget_space(attribute.get()), H5Sclose);
    char* pointer = nullptr;
    status = H5Aread(attribute.get(), memory_type.get(), &pointer);
    if (pointer != nullptr) value = pointer;
    reclaim_strings(memory_type.get(), space.get(), &pointer);
  } else {
    value.assign(H5Tget_size(type.get()), '\0');
    status = H5Aread(attribute.get(), type.get(), value.data());
    if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
      value.erase(value.find_last_not_of(' ') + 1);
    } else {
      value.resize(std::min(value.size(), value.find('\0')));
    }
  }
  RECLM_USER_CHECK(status >= 0, "{}: attribute {}: cannot read (file corrupt){}", name_, name,
                   error_detail());
  return value;
}

}  // namespace reclm::hdf5
