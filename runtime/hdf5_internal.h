// Helpers shared by runtime/hdf5_file.cc (writing) and runtime/hdf5_reader.cc (reading); not
// part of the runtime's interface.
#pragma once

#include <string>

#include "runtime/hdf5_file.h"

namespace reclm::hdf5::internal {

// HDF5 prints its whole error stack to stderr by default; we report one line ourselves. The
// setting is per thread in thread-safe builds, so every Reader/Writer sets it.
void silence_error_printing();

// " (the most specific message on HDF5's error stack)", e.g. " (truncated file: eof = 4096,
// ...)"; "" when the stack is empty.
std::string error_detail();

// Variable-length C strings in the given character set.
Handle vlen_string_type(H5T_cset_t cset);

// Frees what H5Dread/H5Aread allocated for variable-length strings.
void reclaim_strings(hid_t type, hid_t space, char** strings);

// "int32", "uint64", "float64", "variable-length strings": how a stored type reads in a message.
std::string describe_type(hid_t type);

// File access properties: lock where the file system supports it, and do not fail where it
// does not (network file systems often answer ENOSYS).
Handle file_access_props();

}  // namespace reclm::hdf5::internal
