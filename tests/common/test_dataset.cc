#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include "anvil/common/dataset.h"
#include "anvil/common/tensor_io.h"
#include "scratch_dir_for_tests.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {
/// A fresh folder `name` in this process's scratch folder, which is removed when the test program exits.
std::string make_dir(const std::string& name) {
  static const anvil::test::ScratchDir scratch("anvil_dataset");
  const fs::path p = scratch.file(name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

/// An idx file of unsigned bytes: the header for `dims`, then `data` (which may be short of them).
std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::string b = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<char>(d >> shift));
  b.append(data.begin(), data.end());
  return b;
}

void write_file(const std::string& path, const std::string& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_TRUE(f);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
  } else {
    anvil::write_file(path, bytes);
  }
}

/// A fashion-mnist folder with `n` 2x2 training images (image i's pixels are 4i..4i+3) and labels i.
std::string idx_dir(const std::string& name, uint32_t n, bool gzip) {
  const std::string dir = make_dir(name), gz = gzip ? ".gz" : "";
  std::vector<uint8_t> pixels, labels;
  for (uint32_t i = 0; i < 4 * n; ++i) pixels.push_back(static_cast<uint8_t>(i));
  for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i));
  write_file(dir + "/train-images-idx3-ubyte" + gz, idx_bytes({n, 2, 2}, pixels), gzip);
  write_file(dir + "/train-labels-idx1-ubyte" + gz, idx_bytes({n}, labels), gzip);
  return dir;
}

/// The error code f throws, or none.
std::optional<ErrorCode> code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return std::nullopt;
}
}  // namespace

TEST(Dataset, NpySplitFilesWithLabelsAndNormalisation) {
  const std::string dir = make_dir("anvil_ds_split");
  Tensor px(DType::kUInt8, {3, 2, 2});
  px.data<uint8_t>()[0] = 255;
  write_npy(dir + "/test_images.npy", px);
  write_npy(dir + "/test_labels.npy", Tensor::from_vector<int64_t>({3}, {4, 5, 6}));
  Normalization norm;
  norm.mean = {0.5f};
  norm.std = {0.5f};
  Dataset ds = load_dataset("npy:" + dir, Split::kTest, 2, norm);
  EXPECT_EQ(ds.images.shape(), (Shape{2, 1, 2, 2}));
  EXPECT_FLOAT_EQ(ds.images.data<float>()[0], 1.0f);   // (1 - 0.5) / 0.5
  EXPECT_FLOAT_EQ(ds.images.data<float>()[1], -1.0f);  // (0 - 0.5) / 0.5
  EXPECT_EQ(ds.labels.to_vector<int64_t>(), (std::vector<int64_t>{4, 5}));
}

TEST(Dataset, NpyFolderOfSamples) {
  const std::string dir = make_dir("anvil_ds_samples");
  for (int i = 0; i < 3; ++i) write_npy(dir + "/s" + std::to_string(i) + ".npy", Tensor(DType::kFloat32, {1, 4, 4}));
  Dataset ds = load_dataset("npy:" + dir, Split::kTrain, -1, {});
  EXPECT_EQ(ds.images.shape(), (Shape{3, 1, 4, 4}));
  EXPECT_TRUE(ds.labels.empty());
}

TEST(Dataset, BadSpecsAreClearErrors) {
  EXPECT_THROW(load_dataset("nocolon", Split::kTest, 1, {}), Error);
  EXPECT_THROW(load_dataset("cifar:/tmp", Split::kTest, 1, {}), Error);
  EXPECT_THROW(load_dataset("npy:/nonexistent/dir", Split::kTest, 1, {}), Error);
  const std::string empty = make_dir("anvil_ds_empty");
  EXPECT_THROW(load_dataset("fashion-mnist:" + empty, Split::kTest, 1, {}), Error);
}

TEST(Dataset, PerChannelNormalisationMustMatchChannels) {
  const std::string dir = make_dir("anvil_ds_channels");
  write_npy(dir + "/x.npy", Tensor(DType::kFloat32, {1, 1, 2, 2}));
  Normalization norm;
  norm.mean = {0.1f, 0.2f, 0.3f};
  norm.std = {1.0f, 1.0f, 1.0f};
  EXPECT_THROW(load_dataset("npy:" + dir, Split::kTest, -1, norm), Error);
}

TEST(Dataset, FashionMnistFromDebianWhenInstalled) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Dataset ds = load_dataset("fashion-mnist:" + dir, Split::kTest, 10, {});
  EXPECT_EQ(ds.images.shape(), (Shape{10, 1, 28, 28}));
  EXPECT_EQ(ds.labels.to_vector<int64_t>()[0], 9);  // the first test image is an ankle boot
}

TEST(Dataset, FashionMnistIdxReadsTheFirstImagesOfPlainAndGzipFiles) {
  for (bool gzip : {false, true}) {
    const std::string dir = idx_dir(gzip ? "anvil_ds_idx_gz" : "anvil_ds_idx", 5, gzip);
    const Dataset first = load_dataset("fashion-mnist:" + dir, Split::kTrain, 3, {});
    EXPECT_EQ(first.images.shape(), (Shape{3, 1, 2, 2}));
    EXPECT_FLOAT_EQ(first.images.data<float>()[11], 11.0f / 255.0f);
    EXPECT_EQ(first.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
    const Dataset all = load_dataset("fashion-mnist:" + dir, Split::kTrain, -1, {});
    EXPECT_EQ(all.images.dim(0), 5);
    EXPECT_FLOAT_EQ(all.images.data<float>()[19], 19.0f / 255.0f);
    EXPECT_EQ(load_dataset("fashion-mnist:" + dir, Split::kTrain, 50, {}).images.dim(0), 5);
  }
}

TEST(Dataset, DamagedIdxFilesAreClearErrorsWithoutAllocatingWhatTheHeaderClaims) {
  const std::string dir = idx_dir("anvil_ds_idx_bad", 5, true);
  const std::string images = dir + "/train-images-idx3-ubyte.gz", spec = "fashion-mnist:" + dir;
  auto message = [&] {
    try {
      load_dataset(spec, Split::kTrain, -1, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Short data: an error when the missing images are asked for, none when only the first are.
  write_file(images, idx_bytes({5, 2, 2}, std::vector<uint8_t>(18, 1)), true);
  EXPECT_NE(message().find(images + ": truncated idx data"), std::string::npos) << message();
  EXPECT_EQ(load_dataset(spec, Split::kTrain, 4, {}).images.dim(0), 4);
  // A header claiming 10^12 bytes, and one whose size overflows: errors, no allocation.
  write_file(images, idx_bytes({1000000, 1000, 1000}, {1, 2, 3}), true);
  EXPECT_NE(message().find("truncated idx data"), std::string::npos) << message();
  write_file(images, idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {1, 2, 3}), true);
  EXPECT_NE(message().find(images + ": bad idx header"), std::string::npos) << message();
  // Not an idx file; an empty one; a gzip stream damaged after its first bytes.
  write_file(images, "not idx at all", true);
  EXPECT_NE(message().find("not an idx file"), std::string::npos) << message();
  write_file(images, "", false);
  EXPECT_EQ(code_of([&] { load_dataset(spec, Split::kTrain, -1, {}); }), ErrorCode::kParseError);
  std::vector<uint8_t> noise(4000);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  write_file(images, idx_bytes({1000, 2, 2}, noise), true);
  std::string gz = read_file(images);
  for (size_t i = 40; i < gz.size() - 8; i += 7) gz[i] = static_cast<char>(gz[i] ^ 0x5A);
  write_file(images, gz, false);
  EXPECT_EQ(code_of([&] { load_dataset(spec, Split::kTrain, -1, {}); }), ErrorCode::kParseError) << message();
}

/// The message load_dataset fails with, or "no error".
std::string load_error(const std::string& spec, Split split, int64_t count) {
  try {
    load_dataset(spec, split, count, {});
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Dataset, NpyLabelsMustBeOneNonNegativeIntegerPerImage) {
  const std::string dir = make_dir("anvil_ds_labels"), spec = "npy:" + dir, labels = dir + "/test_labels.npy";
  write_npy(dir + "/test_images.npy", Tensor(DType::kUInt8, {4, 2, 2}));
  // Fewer labels than images, and more: an error naming the file and both counts, even when only
  // the first images are asked for (the count is the file's, not the request's).
  for (int64_t n : {1, 6}) {
    write_npy(labels, Tensor(DType::kInt64, {n}));
    for (int64_t count : {-1, 1}) {
      const std::string e = load_error(spec, Split::kTest, count);
      EXPECT_NE(e.find(labels + " has " + std::to_string(n) + " labels for 4 images"), std::string::npos) << e;
    }
  }
  write_npy(labels, Tensor::from_vector<int64_t>({4}, {0, 1, -1, 2}));
  std::string e = load_error(spec, Split::kTest, -1);
  EXPECT_NE(e.find(labels + ": label -1 (image 2) is not a class index"), std::string::npos) << e;
  write_npy(labels, Tensor(DType::kFloat32, {4}));
  e = load_error(spec, Split::kTest, -1);
  EXPECT_NE(e.find(labels + ": labels must be integers, got float32"), std::string::npos) << e;
  write_npy(labels, Tensor::from_vector<uint8_t>({4}, {3, 2, 1, 0}));
  const Dataset ds = load_dataset(spec, Split::kTest, -1, {});
  EXPECT_EQ(ds.labels.to_vector<int64_t>(), (std::vector<int64_t>{3, 2, 1, 0}));
  EXPECT_EQ(ds.labels_file, labels);
  EXPECT_EQ(load_dataset(spec, Split::kTest, 2, {}).labels.to_vector<int64_t>(), (std::vector<int64_t>{3, 2}));
}

TEST(Dataset, NpyImagesWithoutABatchAxisAreAClearError) {
  for (const Shape& shape : {Shape{}, Shape{28}}) {
    const std::string dir = make_dir("anvil_ds_rank"), images = dir + "/test_images.npy";
    write_npy(images, Tensor(DType::kUInt8, shape));
    write_npy(dir + "/test_labels.npy", Tensor(DType::kInt64, {1}));
    const std::string e = load_error("npy:" + dir, Split::kTest, -1);
    EXPECT_NE(e.find(images + ": images need a batch axis, got shape " + shape_str(shape)), std::string::npos) << e;
  }
}

TEST(Dataset, NpyFolderOfSamplesNamesTheFileThatDoesNotMatchTheFirst) {
  const std::string dir = make_dir("anvil_ds_mixed"), spec = "npy:" + dir;
  write_npy(dir + "/a.npy", Tensor(DType::kUInt8, {28, 28}));
  write_npy(dir + "/b.npy", Tensor(DType::kUInt8, {14, 56}));
  std::string e = load_error(spec, Split::kTrain, -1);
  EXPECT_NE(e.find(dir + "/b.npy: uint8[14, 56] does not match " + dir + "/a.npy: uint8[28, 28]"), std::string::npos) << e;
  write_npy(dir + "/b.npy", Tensor(DType::kFloat32, {28, 28}));
  e = load_error(spec, Split::kTrain, -1);
  EXPECT_NE(e.find(dir + "/b.npy: float32[28, 28] does not match " + dir + "/a.npy: uint8[28, 28]"), std::string::npos) << e;
  // A batch file of the same samples matches; the files past the count are not read.
  write_npy(dir + "/b.npy", Tensor(DType::kUInt8, {3, 1, 28, 28}));
  write_npy(dir + "/a.npy", Tensor(DType::kUInt8, {1, 28, 28}));
  EXPECT_EQ(load_dataset(spec, Split::kTrain, -1, {}).images.shape(), (Shape{4, 1, 28, 28}));
  write_npy(dir + "/c.npy", Tensor(DType::kUInt8, {5, 5}));
  EXPECT_EQ(load_dataset(spec, Split::kTrain, 2, {}).images.shape(), (Shape{2, 1, 28, 28}));
}

TEST(Dataset, StdMustBeFiniteAndPositive) {
  const std::string dir = make_dir("anvil_ds_std");
  write_npy(dir + "/x.npy", Tensor(DType::kFloat32, {1, 1, 2, 2}));
  for (float s : {0.0f, -1.0f, INFINITY, NAN}) {
    Normalization norm;
    norm.std = {s};
    try {
      load_dataset("npy:" + dir, Split::kTest, -1, norm);
      ADD_FAILURE() << "std " << s << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--std must be finite and positive"), std::string::npos) << e.what();
    }
  }
}

namespace {
/// A graph input `name` of shape `dims` (-1: dynamic), as anvil::fed_inputs describes one.
InputShape input_of(const std::string& name, const std::vector<int64_t>& dims) {
  InputShape in;
  in.name = name;
  in.has_shape = true;
  in.dims = dims;
  return in;
}
}  // namespace

TEST(Dataset, SamplesOfTheInputsRankKeepTheirShape) {
  // A Conv1d input [N, 2, 8] and 8 x 2 x 8 data: no channel axis is added (it was N x 1 x 2 x 8).
  const std::string dir = make_dir("anvil_ds_conv1d");
  write_npy(dir + "/train_images.npy", Tensor(DType::kFloat32, {8, 2, 8}));
  const InputShape conv1d = input_of("x", {-1, 2, 8});
  EXPECT_EQ(load_dataset("npy:" + dir, Split::kTrain, -1, {}, &conv1d).images.shape(), (Shape{8, 2, 8}));
  // A fixed batch is not compared: the caller feeds batches of its size.
  const InputShape fixed = input_of("x", {1, 2, 8});
  EXPECT_EQ(load_dataset("npy:" + dir, Split::kTrain, 3, {}, &fixed).images.shape(), (Shape{3, 2, 8}));
}

TEST(Dataset, TheChannelAxisIsAddedWhereTheInputHasOne) {
  // N x H x W pixels for an [N, 1, H, W] input (dynamic or fixed batch, or a dynamic channel axis).
  const std::string dir = idx_dir("anvil_ds_fit_idx", 3, false);
  for (const InputShape& in : {input_of("input", {-1, 1, 2, 2}), input_of("input", {1, 1, 2, 2}),
                               input_of("input", {-1, -1, 2, 2})}) {
    const Dataset ds = load_dataset("fashion-mnist:" + dir, Split::kTrain, -1, {}, &in);
    EXPECT_EQ(ds.images.shape(), (Shape{3, 1, 2, 2})) << in.str();
  }
  // ... and the same for a folder of H x W samples, or N x L data for an [N, 1, L] input.
  const std::string files = make_dir("anvil_ds_fit_files");
  for (int i = 0; i < 2; ++i) write_npy(files + "/s" + std::to_string(i) + ".npy", Tensor(DType::kUInt8, {2, 2}));
  const InputShape image = input_of("input", {-1, 1, 2, 2});
  EXPECT_EQ(load_dataset("npy:" + files, Split::kTrain, -1, {}, &image).images.shape(), (Shape{2, 1, 2, 2}));
  const std::string lines = make_dir("anvil_ds_fit_1d");
  write_npy(lines + "/test_images.npy", Tensor(DType::kFloat32, {5, 16}));
  const InputShape line = input_of("s", {-1, 1, 16});
  EXPECT_EQ(load_dataset("npy:" + lines, Split::kTest, -1, {}, &line).images.shape(), (Shape{5, 1, 16}));
  // Without an input, or one without a shape, N x H x W stays grey images (N x 1 x H x W).
  InputShape unknown;
  unknown.name = "input";
  EXPECT_EQ(load_dataset("fashion-mnist:" + dir, Split::kTrain, -1, {}, &unknown).images.shape(), (Shape{3, 1, 2, 2}));
  EXPECT_EQ(load_dataset("fashion-mnist:" + dir, Split::kTrain, -1, {}).images.shape(), (Shape{3, 1, 2, 2}));
}

TEST(Dataset, DataThatDoesNotFitTheInputNamesTheFileAndBothShapes) {
  const std::string dir = make_dir("anvil_ds_misfit"), images = dir + "/train_images.npy";
  write_npy(images, Tensor(DType::kFloat32, {8, 2, 8}));
  auto message = [&](const InputShape& in) {
    try {
      load_dataset("npy:" + dir, Split::kTrain, -1, {}, &in);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  for (const InputShape& in : {input_of("x", {-1, 3, 8}), input_of("x", {-1, 2, 2, 8}), input_of("x", {-1, 16})}) {
    const std::string e = message(in);
    EXPECT_NE(e.find("dataset 'npy:" + dir + "': " + images + ": data of shape [8, 2, 8] does not fit input 'x' of shape " +
                     in.str()),
              std::string::npos)
        << e;
  }
  // A folder of samples is named by its pattern.
  const std::string files = make_dir("anvil_ds_misfit_files");
  write_npy(files + "/a.npy", Tensor(DType::kUInt8, {4, 4}));
  const InputShape in = input_of("x", {-1, 1, 2, 2});
  try {
    load_dataset("npy:" + files, Split::kTrain, -1, {}, &in);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(files + "/*.npy: data of shape [1, 4, 4] does not fit input 'x' of shape [?, 1, 2, 2]"),
              std::string::npos) << e.what();
  }
}
