#pragma once
/// Pieces shared by the `anvil` subcommands: dataset options, targets, tables.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "anvil/common/dataset.h"
#include "anvil/quantizer/quantizer.h"

namespace anvil::cli {

/// --mean / --std, applied to pixels scaled to [0,1] for every subcommand that reads a dataset.
struct NormOptions {
  std::vector<float> mean{0.0f}, std{1.0f};
  void add_to(CLI::App* app);
  Normalization get() const { return {mean, std}; }
};

/// load_dataset for `model`: the images take the shape of its graph input when it feeds exactly
/// one (calibration feeds one; quant::calibrate names the problem otherwise).
Dataset load_dataset_for(const onnx::ModelProto& model, const std::string& spec, Split split, int64_t count,
                         const Normalization& norm);

/// The runtime device spec for a compile target: "warboy" -> one PE, "warboy-2pe" -> a fused pair.
std::string device_spec_for_target(const std::string& target);

/// Index of the largest element of row `row` of a [N, C] tensor (float32 or int8).
int64_t argmax_row(const Tensor& t, int64_t row);

/// A plain text table: header row, then rows; columns padded to their widest cell.
std::string format_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

/// A CLI11 check for an output file option: its directory must exist and be writable, so that a
/// long command (an evaluation, a calibration) fails at once on a mistyped path, not at its end.
CLI::Validator writable_output();

/// The same for an output folder: it is a writable folder, or it does not exist and the nearest
/// folder above it that does is writable (the command creates the rest).
CLI::Validator writable_output_dir();

/// load_onnx(path) of a model quantize and calibrate take: an FP32 one. An already quantized model
/// fails at once (kInvalidArgument, naming the file and its first Q/DQ node), not after calibration.
onnx::ModelProto load_float_model(const std::string& path);

/// Fails (kInvalidArgument, naming `option`) when `out` is the file `in` (after symbolic links):
/// a command writing its output must not overwrite the model it reads.
void check_not_input(const std::string& in, const std::string& out, const std::string& option);

/// A CLI11 check for a --threads option: 1..1024 host threads.
CLI::Validator thread_count();

/// A CLI11 check for an image count (--calib-count, --count): at least 1 (up to 2^40).
CLI::Validator image_count();

/// Whether p is a percentile the PERCENTILE methods take: in (0, 100] (NaN is not).
bool valid_percentile(float p);

/// A CLI11 check for --percentile: valid_percentile of the value.
CLI::Validator percentile_range();

/// printf-style formatting into a std::string.
std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

/// What a per-tensor search did (quantize and eval print the same): the start, the result (and
/// on held-out inputs), each change kept and each change the held-out inputs refused.
std::string search_summary(const quant::TensorSearchResult& found, int64_t samples, int64_t holdout);

void register_quantize(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_compile(CLI::App& app);
void register_run(CLI::App& app);
void register_eval(CLI::App& app);
void register_registers(CLI::App& app);
void register_disasm(CLI::App& app);
void register_ref(CLI::App& app);
void register_bench(CLI::App& app);
void register_device(CLI::App& app);

}  // namespace anvil::cli
