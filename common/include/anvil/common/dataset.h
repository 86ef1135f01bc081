#pragma once
/// Datasets for calibration and evaluation.
///
/// A dataset is named by a spec string:
///   fashion-mnist:DIR  the standard idx files (train-images-idx3-ubyte[.gz], ...), as installed by
///                      Debian's dataset-fashion-mnist into /usr/share/datasets/fashion-mnist;
///   npy:DIR            DIR/{train,test}_images.npy (+ optional {train,test}_labels.npy), or else every
///                      *.npy file in DIR in name order, each one sample or a batch along axis 0.
/// uint8 images are pixels and are scaled to [0,1]; float images are taken as already in [0,1].
/// The samples then take the shape of the graph input they feed (load_dataset), and the model's
/// input normalisation (x - mean) / std is applied, per channel (axis 1) or for all.
#include <string>
#include <vector>

#include "anvil/common/graph_input.h"
#include "anvil/common/tensor.h"

namespace anvil {

enum class Split { kTrain, kTest };

struct Normalization {
  std::vector<float> mean{0.0f};  ///< one value, or one per channel
  std::vector<float> std{1.0f};   ///< one value, or one per channel
};

struct Dataset {
  Tensor images;  ///< float32, N x (the input's shape past its batch axis), normalised
  Tensor labels;  ///< int64, N, each >= 0; empty when the dataset has no labels
  std::string labels_file;  ///< the file the labels were read from (for messages); empty without labels
  std::string name;
};

/// Loads the first `count` samples (count < 0: all) of a split. Errors name the spec and the file.
/// `input` is the graph input the samples feed; they take its shape:
///  - data of the input's rank keeps its shape (N x 2 x 8 for an [N, 2, 8] Conv1d input);
///  - data with one axis fewer gets a channel axis of 1 at axis 1 when the input's axis 1 is 1 or
///    dynamic (N x H x W pixels for an [N, 1, H, W] input, as Fashion-MNIST's idx files are);
///  - anything else, or a fixed dimension past the batch axis that differs from the data's, is
///    kInvalidArgument naming the file, the data's shape and the input's.
/// Without `input`, or for an input that declares no shape, N x H x W data is taken as grey
/// images and becomes N x 1 x H x W; other ranks keep their shape.
Dataset load_dataset(const std::string& spec, Split split, int64_t count, const Normalization& norm,
                     const InputShape* input = nullptr);

}  // namespace anvil
