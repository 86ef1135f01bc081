#include <gtest/gtest.h>

#include <filesystem>

#include "anvil/common/dataset.h"
#include "anvil/common/tensor_io.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {
std::string make_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
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
