#include "anvil/common/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "anvil/common/tensor_io.h"

namespace anvil {
namespace fs = std::filesystem;

namespace {

/// An idx file open for reading, gunzipped on the fly when it is gzip'ed (zlib's gz reader passes
/// plain files through).
class IdxReader {
 public:
  explicit IdxReader(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) fail(ErrorCode::kNotFound, path + ": cannot open file");
    gzbuffer(f_, 1 << 17);
  }
  ~IdxReader() { gzclose(f_); }
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  /// Reads up to `bytes` bytes; returns how many there were. A damaged stream is an error.
  size_t read(void* to, size_t bytes) {
    size_t done = 0;
    while (done < bytes) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes - done, size_t{1} << 30));
      const int n = gzread(f_, static_cast<char*>(to) + done, chunk);
      if (n < 0) fail(ErrorCode::kParseError, path_ + ": corrupt gzip stream");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

 private:
  const std::string path_;
  gzFile f_;
};

uint32_t be32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const std::string& p : {dir + "/" + stem + ".gz", dir + "/" + stem})
    if (fs::exists(p)) return p;
  fail(ErrorCode::kNotFound, "fashion-mnist:" + dir + ": missing " + stem + "[.gz]");
}

/// idx format: magic 0x00000800 | ndim (byte 3), big-endian dims, then uint8 data. Only the first
/// `count` items (all when count < 0) are read and decompressed: calibrating on 500 training images
/// no longer gunzips all 60,000 (0.3 s).
Tensor read_idx(const std::string& path, int64_t count) {
  IdxReader in(path);
  unsigned char head[4];
  if (in.read(head, 4) < 4 || head[0] != 0 || head[1] != 0 || head[2] != 8)
    fail(ErrorCode::kParseError, path + ": not an idx file of unsigned bytes");
  const int ndim = head[3];
  std::vector<unsigned char> dims(4 * static_cast<size_t>(ndim));
  if (ndim < 1 || in.read(dims.data(), dims.size()) < dims.size()) fail(ErrorCode::kParseError, path + ": bad idx header");
  Shape shape;
  for (int i = 0; i < ndim; ++i) shape.push_back(be32(dims.data() + 4 * i));
  if (count >= 0) shape[0] = std::min<int64_t>(shape[0], count);
  // The data is read in chunks as it arrives, so a damaged header that claims more than the file
  // holds is a "truncated" error, not an allocation of what it claims.
  uint64_t bytes = 1;
  for (int64_t d : shape) {
    if (d != 0 && bytes > (uint64_t{1} << 48) / static_cast<uint64_t>(d))
      fail(ErrorCode::kParseError, path + ": bad idx header (dimensions " + shape_str(shape) + ")");
    bytes *= static_cast<uint64_t>(d);
  }
  std::vector<uint8_t> data;
  constexpr size_t kChunk = size_t{4} << 20;
  while (data.size() < bytes) {
    const size_t have = data.size(), want = std::min<uint64_t>(kChunk, bytes - have);
    data.resize(have + want);
    if (in.read(data.data() + have, want) < want) fail(ErrorCode::kParseError, path + ": truncated idx data");
  }
  Tensor t(DType::kUInt8, shape);
  if (bytes) std::memcpy(t.raw(), data.data(), bytes);
  return t;
}

/// uint8 pixels scaled to [0, 1]; float32 as it is.
Tensor to_float(const Tensor& images, const std::string& what) {
  if (images.dtype() == DType::kFloat32) return images;
  if (images.dtype() != DType::kUInt8)
    fail(ErrorCode::kUnsupported, what + ": images must be uint8 pixels or float32 in [0,1], got " +
                                      dtype_name(images.dtype()));
  Tensor x = images.cast(DType::kFloat32);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] /= 255.0f;
  return x;
}

/// The samples `x` (N x ..., read from `file`) in the shape of the graph input they feed
/// (load_dataset in dataset.h says how). The batch axis is not compared: the caller feeds a fixed
/// batch in batches of its size.
Tensor fit_to_input(const Tensor& x, const InputShape* input, const std::string& what, const std::string& file) {
  if (x.rank() < 2) fail(ErrorCode::kInvalidArgument, what + ": images need a batch axis, got shape " + shape_str(x.shape()));
  if (!input || !input->has_shape)  // nothing says otherwise: N x H x W is grey images
    return x.rank() == 3 ? x.reshaped({x.dim(0), 1, x.dim(1), x.dim(2)}) : x;
  const std::vector<int64_t>& want = input->dims;
  Shape fitted = x.shape();
  if (x.rank() + 1 == want.size() && (want[1] == 1 || want[1] < 0)) fitted.insert(fitted.begin() + 1, 1);
  bool ok = fitted.size() == want.size();
  for (size_t i = 1; ok && i < want.size(); ++i) ok = want[i] < 0 || want[i] == fitted[i];
  if (!ok)
    fail(ErrorCode::kInvalidArgument, what + ": " + file + ": data of shape " + shape_str(x.shape()) +
                                          " does not fit input '" + input->name + "' of shape " + input->str() +
                                          " (samples must have the input's shape past its batch axis, or lack only "
                                          "its channel axis of 1)");
  return fitted == x.shape() ? x : x.reshaped(fitted);
}

void normalize(Tensor& x, const Normalization& norm, const std::string& what) {
  const int64_t channels = x.rank() >= 2 ? x.dim(1) : 1;
  auto pick = [&](const std::vector<float>& v, int64_t c, const char* name) {
    if (v.size() == 1) return v[0];
    if (static_cast<int64_t>(v.size()) != channels)
      fail(ErrorCode::kInvalidArgument, what + ": --" + name + " has " + std::to_string(v.size()) +
                                            " values for " + std::to_string(channels) + " channels");
    return v[c];
  };
  const int64_t n = x.dim(0), inner = x.numel() / std::max<int64_t>(1, n * channels);
  float* p = x.data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const float m = pick(norm.mean, c, "mean"), s = pick(norm.std, c, "std");
    if (!(s > 0) || !std::isfinite(s)) fail(ErrorCode::kInvalidArgument, what + ": --std must be finite and positive");
    for (int64_t i = 0; i < n; ++i) {
      float* q = p + (i * channels + c) * inner;
      for (int64_t j = 0; j < inner; ++j) q[j] = (q[j] - m) / s;
    }
  }
}

/// The shape of one sample of a folder-of-samples file: a rank-4 file is a batch (its first axis
/// dropped), a lower rank is one sample.
Shape sample_shape(const Shape& file_shape) {
  return file_shape.size() >= 4 ? Shape(file_shape.begin() + 1, file_shape.end()) : file_shape;
}

/// A {train,test}_labels.npy file for `images` images (all of the file's, before the caller keeps
/// the first N): one non-negative integer class index per image, as int64.
Tensor read_npy_labels(const std::string& path, int64_t images, const std::string& spec) {
  const Tensor raw = read_npy(path);
  const std::string what = "dataset '" + spec + "': " + path;
  const DType t = raw.dtype();
  if (t != DType::kUInt8 && t != DType::kInt8 && t != DType::kUInt16 && t != DType::kInt16 && t != DType::kUInt32 &&
      t != DType::kInt32 && t != DType::kUInt64 && t != DType::kInt64)
    fail(ErrorCode::kInvalidArgument, what + ": labels must be integers, got " + dtype_name(raw.dtype()));
  if (raw.numel() != images)
    fail(ErrorCode::kInvalidArgument, what + " has " + std::to_string(raw.numel()) + " labels for " +
                                          std::to_string(images) + " images");
  Tensor labels = raw.cast(DType::kInt64).reshaped({images});
  for (int64_t i = 0; i < images; ++i)
    if (labels.data<int64_t>()[i] < 0)
      fail(ErrorCode::kInvalidArgument, what + ": label " + std::to_string(labels.data<int64_t>()[i]) + " (image " +
                                            std::to_string(i) + ") is not a class index");
  return labels;
}

}  // namespace

Dataset load_dataset(const std::string& spec, Split split, int64_t count, const Normalization& norm,
                     const InputShape* input) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos)
    fail(ErrorCode::kInvalidArgument, "dataset '" + spec + "': expected fashion-mnist:DIR or npy:DIR");
  const std::string kind = spec.substr(0, colon), dir = spec.substr(colon + 1);
  if (!fs::is_directory(dir)) fail(ErrorCode::kNotFound, "dataset '" + spec + "': no such directory " + dir);
  Dataset ds;
  ds.name = spec;
  const std::string s = split == Split::kTrain ? "train" : "test";
  if (kind == "fashion-mnist") {
    const std::string stem = split == Split::kTrain ? "train" : "t10k";
    const std::string images = find_idx(dir, stem + "-images-idx3-ubyte");
    ds.images = fit_to_input(to_float(read_idx(images, count), spec), input, "dataset '" + spec + "'", images);
    ds.labels_file = find_idx(dir, stem + "-labels-idx1-ubyte");
    Tensor labels = read_idx(ds.labels_file, count);
    if (labels.numel() != ds.images.dim(0))
      fail(ErrorCode::kParseError, "dataset '" + spec + "': " + std::to_string(labels.numel()) + " labels for " +
                                       std::to_string(ds.images.dim(0)) + " images");
    ds.labels = labels.cast(DType::kInt64);
  } else if (kind == "npy") {
    const std::string images = dir + "/" + s + "_images.npy", labels = dir + "/" + s + "_labels.npy";
    Tensor raw;
    std::string source = images;  // the file (or the folder of files) the samples came from, for messages
    if (fs::exists(images)) {
      raw = read_npy(images);
      if (raw.rank() < 2)
        fail(ErrorCode::kInvalidArgument, "dataset '" + spec + "': " + images + ": images need a batch axis, got shape " +
                                              shape_str(raw.shape()));
      if (fs::exists(labels)) ds.labels = read_npy_labels(labels, raw.dim(0), spec), ds.labels_file = labels;
    } else {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".npy") files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      if (files.empty()) fail(ErrorCode::kNotFound, "dataset '" + spec + "': no .npy files in " + dir);
      source = dir + "/*.npy";
      std::vector<Tensor> parts;
      Tensor first;  // the first file as read: every other file's samples must match its shape and dtype
      for (const std::string& f : files) {
        if (count >= 0 && static_cast<int64_t>(parts.size()) >= count) break;
        // A rank-4 file is a batch (N x C x H x W); a lower rank is one sample (C x H x W or H x W).
        Tensor t = read_npy(f);
        if (parts.empty()) first = t;
        if (t.dtype() != first.dtype() || sample_shape(t.shape()) != sample_shape(first.shape()))
          fail(ErrorCode::kInvalidArgument, "dataset '" + spec + "': " + f + ": " + dtype_name(t.dtype()) +
                                                shape_str(t.shape()) + " does not match " + files.front() + ": " +
                                                dtype_name(first.dtype()) + shape_str(first.shape()));
        Shape sh = t.shape();
        if (sh.size() < 4) sh.insert(sh.begin(), 1), t = t.reshaped(sh);
        parts.push_back(t);
      }
      raw = Tensor::concat0(parts);
    }
    if (count >= 0 && raw.dim(0) > count) raw = raw.slice0(0, count);
    if (!ds.labels.empty()) ds.labels = ds.labels.slice0(0, raw.dim(0));
    ds.images = fit_to_input(to_float(raw, spec), input, "dataset '" + spec + "'", source);
  } else {
    fail(ErrorCode::kInvalidArgument, "dataset '" + spec + "': unknown kind '" + kind + "' (fashion-mnist or npy)");
  }
  normalize(ds.images, norm, "dataset '" + spec + "'");
  return ds;
}

}  // namespace anvil
