#include "anvil/common/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "anvil/common/tensor_io.h"

namespace anvil {
namespace fs = std::filesystem;

namespace {

/// Reads a file, gunzipping it when it is gzip'ed (zlib's gz reader passes plain files through).
std::string read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(ErrorCode::kNotFound, path + ": cannot open file");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  const bool bad = n < 0;
  gzclose(f);
  if (bad) fail(ErrorCode::kParseError, path + ": corrupt gzip stream");
  return out;
}

uint32_t be32(const std::string& s, size_t off) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[off])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[off + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[off + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[off + 3]));
}

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const std::string& p : {dir + "/" + stem + ".gz", dir + "/" + stem})
    if (fs::exists(p)) return p;
  fail(ErrorCode::kNotFound, "fashion-mnist:" + dir + ": missing " + stem + "[.gz]");
}

/// idx format: magic 0x00000800 | ndim (byte 3), big-endian dims, then uint8 data.
Tensor read_idx(const std::string& path, int64_t count) {
  const std::string bytes = read_maybe_gz(path);
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 8)
    fail(ErrorCode::kParseError, path + ": not an idx file of unsigned bytes");
  const int ndim = static_cast<unsigned char>(bytes[3]);
  if (ndim < 1 || bytes.size() < 4 + 4 * static_cast<size_t>(ndim)) fail(ErrorCode::kParseError, path + ": bad idx header");
  Shape shape;
  for (int i = 0; i < ndim; ++i) shape.push_back(be32(bytes, 4 + 4 * i));
  if (count >= 0) shape[0] = std::min<int64_t>(shape[0], count);
  Tensor t(DType::kUInt8, shape);
  const size_t off = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() - off < t.nbytes()) fail(ErrorCode::kParseError, path + ": truncated idx data");
  std::memcpy(t.raw(), bytes.data() + off, t.nbytes());
  return t;
}

Tensor to_nchw_float(const Tensor& images, const std::string& what) {
  Tensor x;
  if (images.dtype() == DType::kUInt8) {
    x = images.cast(DType::kFloat32);
    float* p = x.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] /= 255.0f;
  } else if (images.dtype() == DType::kFloat32) {
    x = images;
  } else {
    fail(ErrorCode::kUnsupported, what + ": images must be uint8 pixels or float32 in [0,1], got " +
                                      dtype_name(images.dtype()));
  }
  if (x.rank() == 3) x = x.reshaped({x.dim(0), 1, x.dim(1), x.dim(2)});  // N x H x W -> N x 1 x H x W
  if (x.rank() < 2) fail(ErrorCode::kInvalidArgument, what + ": images need a batch axis, got shape " + shape_str(x.shape()));
  return x;
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
    if (!(s > 0)) fail(ErrorCode::kInvalidArgument, what + ": --std must be positive");
    for (int64_t i = 0; i < n; ++i) {
      float* q = p + (i * channels + c) * inner;
      for (int64_t j = 0; j < inner; ++j) q[j] = (q[j] - m) / s;
    }
  }
}

}  // namespace

Dataset load_dataset(const std::string& spec, Split split, int64_t count, const Normalization& norm) {
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
    ds.images = to_nchw_float(read_idx(find_idx(dir, stem + "-images-idx3-ubyte"), count), spec);
    Tensor labels = read_idx(find_idx(dir, stem + "-labels-idx1-ubyte"), count);
    if (labels.numel() != ds.images.dim(0))
      fail(ErrorCode::kParseError, "dataset '" + spec + "': " + std::to_string(labels.numel()) + " labels for " +
                                       std::to_string(ds.images.dim(0)) + " images");
    ds.labels = labels.cast(DType::kInt64);
  } else if (kind == "npy") {
    const std::string images = dir + "/" + s + "_images.npy", labels = dir + "/" + s + "_labels.npy";
    Tensor raw;
    if (fs::exists(images)) {
      raw = read_npy(images);
      if (fs::exists(labels)) ds.labels = read_npy(labels).cast(DType::kInt64);
    } else {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".npy") files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      if (files.empty()) fail(ErrorCode::kNotFound, "dataset '" + spec + "': no .npy files in " + dir);
      std::vector<Tensor> parts;
      for (const std::string& f : files) {
        if (count >= 0 && static_cast<int64_t>(parts.size()) >= count) break;
        // A rank-4 file is a batch (N x C x H x W); a lower rank is one sample (C x H x W or H x W).
        Tensor t = read_npy(f);
        Shape sh = t.shape();
        if (sh.size() < 4) sh.insert(sh.begin(), 1), t = t.reshaped(sh);
        parts.push_back(t);
      }
      raw = Tensor::concat0(parts);
    }
    if (count >= 0 && raw.dim(0) > count) raw = raw.slice0(0, count);
    if (!ds.labels.empty() && ds.labels.numel() > raw.dim(0)) ds.labels = ds.labels.slice0(0, raw.dim(0));
    ds.images = to_nchw_float(raw, spec);
  } else {
    fail(ErrorCode::kInvalidArgument, "dataset '" + spec + "': unknown kind '" + kind + "' (fashion-mnist or npy)");
  }
  normalize(ds.images, norm, "dataset '" + spec + "'");
  return ds;
}

}  // namespace anvil
