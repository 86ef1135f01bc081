/// anvil calibrate MODEL --calib DATASET -o ranges.json [--calib-count N] [--mean --std]
/// One FP32 pass over the calibration images (after graph optimisation); writes the statistics
/// (Calibration::to_json) plus the range of every tensor under every method, so that
/// `anvil quantize --ranges ranges.json --method M` never runs the model again.
#include <chrono>
#include <iostream>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/quantizer/quantizer.h"
#include "cli_common.h"

namespace anvil::cli {

void register_calibrate(CLI::App& app) {
  struct Opts {
    std::string model, calib, out;
    int64_t calib_count = 500;
    float percentile = 99.99f;
    NormOptions norm;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("calibrate", "run the FP32 model once over calibration data; write every method's ranges");
  cmd->add_option("model", o->model, "FP32 ONNX model")->required();
  cmd->add_option("--calib", o->calib, "calibration dataset: fashion-mnist:DIR or npy:DIR (its training split)")->required();
  cmd->add_option("-o,--output", o->out, "ranges JSON to write")->required()->check(writable_output());
  cmd->add_option("--calib-count", o->calib_count, "number of calibration images (first N of the training split)")
      ->check(image_count());
  cmd->add_option("--percentile", o->percentile, "percentile for the PERCENTILE methods' listed ranges")
      ->check(percentile_range());
  o->norm.add_to(cmd);
  cmd->callback([o] {
    check_not_input(o->model, o->out, "-o");
    const onnx::ModelProto optimized = quant::optimize(load_float_model(o->model));
    const Dataset calib = load_dataset_for(optimized, o->calib, Split::kTrain, o->calib_count, o->norm.get());
    quant::CalibrationTime time;
    const quant::Calibration c = quant::calibrate(optimized, calib.images, true, &time);
    const auto search_start = std::chrono::steady_clock::now();
    nlohmann::json j = c.to_json();
    j["calibration_images"] = c.samples;
    j["percentile"] = o->percentile;
    nlohmann::json ranges = nlohmann::json::object();
    for (int m = 0; m <= static_cast<int>(quant::Method::kMseSym); ++m) {
      const auto method = static_cast<quant::Method>(m);
      nlohmann::json per = nlohmann::json::object();
      for (const auto& [name, r] : c.ranges(method, o->percentile)) per[name] = {r.min, r.max};
      ranges[quant::method_name(method)] = per;
    }
    j["ranges"] = ranges;
    const double search_s = seconds_since(search_start);
    write_file(o->out, j.dump(1) + "\n");
    std::cout << "calibrated " << o->model << " on " << c.samples << " images: " << c.tensors.size()
              << " tensors, ranges for 10 methods -> " << o->out << '\n'
              << fmt("wall time: one FP32 pass with statistics %.3f s, range searches %.2f s "
                     "(statistics: %.3f s of thread time)\n",
                     time.pass_s, search_s, time.statistics_s);
  });
}

}  // namespace anvil::cli
