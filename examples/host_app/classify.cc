// A small host application using the anvil runtime's C++ API, as an application would use a real
// card: open a device, load a compiled program, run a batch of images, read outputs and stats.
//
// usage: classify PROGRAM IMAGES.npy
//   PROGRAM     from `anvil compile` (e.g. of examples/demo/demo_cnn.onnx quantized by anvil)
//   IMAGES.npy  float32 N x 1 x 28 x 28, normalised as the model expects; N = the program's batch
#include <iostream>

#include "anvil/common/tensor_io.h"
#include "anvil/hw/config.h"
#include "anvil/isa/program.h"
#include "anvil/runtime/runtime.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: classify PROGRAM IMAGES.npy\n";
    return 2;
  }
  try {
    const anvil::isa::Program program = anvil::isa::Program::load(argv[1]);
    const char* preset = program.num_pes == 2 ? "warboy-2pe" : "warboy";
    anvil::rt::Device device = anvil::rt::Device::open(program.num_pes == 2 ? "npu0pe0-1" : "warboy(1)*1",
                                                       anvil::hw::HwConfig::preset(preset));
    anvil::rt::Session session(device, program);
    const anvil::isa::TensorDesc& in = program.inputs.at(0);
    const anvil::isa::TensorDesc& out = program.outputs.at(0);
    // float32 inputs are quantized by the runtime with the program's input scale and zero point.
    const anvil::TensorMap outputs = session.run({{in.name, anvil::read_npy(argv[2])}});
    const anvil::Tensor& logits = outputs.at(out.name);  // int8, quantized with out.scale / out.zero_point
    const int64_t classes = logits.numel() / logits.dim(0);
    for (int64_t i = 0; i < logits.dim(0); ++i) {
      const int8_t* row = logits.data<int8_t>() + i * classes;
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (row[c] > row[best]) best = c;
      std::cout << "image " << i << ": class " << best << " (logit " << (row[best] - out.zero_point) * out.scale << ")\n";
    }
    const anvil::rt::RunStats& s = session.last_stats();
    std::cout << s.cycles << " cycles on the NPU, " << s.latency_us << " us for the request, MAC utilisation "
              << 100.0 * s.mac_utilization << "%\n";
  } catch (const anvil::Error& e) {
    std::cerr << "classify: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
