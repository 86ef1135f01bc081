/// anvil quantize IN.onnx -o OUT.onnx --calib DATASET --method M [--calib-count N]
#include <iostream>

#include "anvil/common/log.h"
#include "anvil/common/onnx_model.h"
#include "anvil/quantizer/quantizer.h"
#include "cli_common.h"

namespace anvil::cli {

void register_quantize(CLI::App& app) {
  struct Opts {
    std::string in, out, calib, method = "MIN_MAX_ASYM";
    int64_t calib_count = 500;
    NormOptions norm;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("quantize", "post-training static quantization of an FP32 ONNX model to QDQ int8");
  cmd->add_option("model", o->in, "FP32 ONNX model")->required();
  cmd->add_option("-o,--output", o->out, "quantized (QDQ) ONNX model to write")->required();
  cmd->add_option("--calib", o->calib, "calibration dataset: fashion-mnist:DIR or npy:DIR (its training split)")->required();
  cmd->add_option("--method", o->method, "calibration method (MIN_MAX_ASYM, MIN_MAX_SYM, ...)");
  cmd->add_option("--calib-count", o->calib_count, "number of calibration images (first N of the training split)");
  o->norm.add_to(cmd);
  cmd->callback([o] {
    quant::QuantizeOptions options;
    options.method = quant::method_from_name(o->method);
    const onnx::ModelProto model = load_onnx(o->in);
    const Dataset calib = load_dataset(o->calib, Split::kTrain, o->calib_count, o->norm.get());
    onnx::ModelProto q = quant::quantize_model(model, calib.images, options).value();
    save_onnx(q, o->out);
    std::cout << "quantized " << o->in << " with " << o->method << " on " << calib.images.dim(0)
              << " calibration images -> " << o->out << '\n';
  });
}

}  // namespace anvil::cli
