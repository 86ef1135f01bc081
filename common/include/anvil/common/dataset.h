#pragma once
/// Datasets for calibration and evaluation.
///
/// A dataset is named by a spec string:
///   fashion-mnist:DIR  the standard idx files (train-images-idx3-ubyte[.gz], ...), as installed by
///                      Debian's dataset-fashion-mnist into /usr/share/datasets/fashion-mnist;
///   npy:DIR            DIR/{train,test}_images.npy (+ optional {train,test}_labels.npy), or else every
///                      *.npy file in DIR in name order, each one sample or a batch along axis 0.
/// uint8 images are pixels and are scaled to [0,1]; float images are taken as already in [0,1].
/// Then the model's input normalisation (x - mean) / std is applied, per channel or for all.
#include <string>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil {

enum class Split { kTrain, kTest };

struct Normalization {
  std::vector<float> mean{0.0f};  ///< one value, or one per channel
  std::vector<float> std{1.0f};   ///< one value, or one per channel
};

struct Dataset {
  Tensor images;  ///< float32, N x C x H x W, normalised
  Tensor labels;  ///< int64, N, each >= 0; empty when the dataset has no labels
  std::string labels_file;  ///< the file the labels were read from (for messages); empty without labels
  std::string name;
};

/// Loads the first `count` samples (count < 0: all) of a split. Errors name the spec and the file.
Dataset load_dataset(const std::string& spec, Split split, int64_t count, const Normalization& norm);

}  // namespace anvil
