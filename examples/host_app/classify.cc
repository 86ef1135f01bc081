// A small host application using the anvil runtime's C++ API, as an application would use a real
// card: open a device, load a compiled program, inspect its inputs/outputs, stream images through
// the asynchronous queue (each request carries its image index as context), read outputs and stats.
//
// usage: classify PROGRAM IMAGES.npy [DEVICE_SPEC]
//   PROGRAM      from `anvil compile` (e.g. of examples/demo/demo_cnn.onnx quantized by anvil)
//   IMAGES.npy   float32 N x C x H x W, normalised as the model expects; N a multiple of the batch
//   DEVICE_SPEC  e.g. warboy(2)*1 (two PEs, requests spread over both); default $ANVIL_DEVICES;
//                unix:/tmp/anvil.sock attaches to `anvil device serve --socket /tmp/anvil.sock`
//                running in another process (this program then links only the runtime's client side)
#include <cstring>
#include <iostream>
#include <map>

#include "anvil/common/tensor_io.h"
#include "anvil/hw/config.h"
#include "anvil/isa/program.h"
#include "anvil/runtime/runtime.h"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::cerr << "usage: classify PROGRAM IMAGES.npy [DEVICE_SPEC]\n";
    return 2;
  }
  try {
    namespace rt = anvil::rt;
    const anvil::isa::Program program = anvil::isa::Program::load(argv[1]);
    std::string spec = argc == 4 ? argv[3] : "";
    if (spec.empty() && program.num_pes == 2) spec = "npu0pe0-1";
    uint32_t pes_used = 0;
    for (uint32_t unit : rt::parse_device_spec(spec)) pes_used |= unit;
    rt::Device device = rt::Device::open(spec, anvil::hw::HwConfig::preset(pes_used & 2 ? "warboy-2pe" : "warboy"));
    rt::SessionOptions options;
    options.queue_depth = 4;
    rt::Session session(device, program, options);
    const rt::TensorInfo in = session.inputs().at(0), out = session.outputs().at(0);
    std::cout << "input " << in.name << " " << anvil::shape_str(in.shape) << " scale " << in.scale << " zero point "
              << in.zero_point << "; output " << out.name << " " << anvil::shape_str(out.shape) << "; "
              << device.units().size() << " unit(s)\n";

    const anvil::Tensor images = anvil::read_npy(argv[2]);
    const int64_t batch = in.shape.at(0), per_image = anvil::shape_numel(in.shape) / batch;
    if (images.dtype() != anvil::DType::kFloat32 || images.numel() % (batch * per_image) != 0) {
      std::cerr << "classify: " << argv[2] << " must be float32 with a multiple of " << batch << " images of "
                << per_image << " values\n";
      return 1;
    }
    const int64_t requests = images.numel() / (batch * per_image);
    // Submit every batch (submit waits while the queue is full), then collect them as they finish.
    std::map<int64_t, anvil::Tensor> logits;
    int64_t submitted = 0;
    auto submit_next = [&] {
      anvil::Tensor x(anvil::DType::kFloat32, in.shape);  // quantized by the runtime with in.scale / in.zero_point
      std::memcpy(x.raw(), images.data<float>() + submitted * batch * per_image, x.nbytes());
      session.submit({{in.name, x}}, submitted * batch);
      ++submitted;
    };
    while (submitted < requests && submitted < options.queue_depth) submit_next();
    for (int64_t done = 0; done < requests; ++done) {
      rt::Request r = session.receive(60.0);
      logits.emplace(std::any_cast<int64_t>(r.context()), r.outputs().at(out.name));  // throws a failed request's error
      if (submitted < requests) submit_next();
    }
    for (const auto& [first, t] : logits) {
      const int64_t classes = t.numel() / t.dim(0);
      for (int64_t i = 0; i < t.dim(0); ++i) {
        const int8_t* row = t.data<int8_t>() + i * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; ++c)
          if (row[c] > row[best]) best = c;
        std::cout << "image " << first + i << ": class " << best << " (logit " << (row[best] - out.zero_point) * out.scale << ")\n";
      }
    }
    const rt::SessionStats st = session.stats();
    std::cout << st.completed << " requests, " << st.throughput_per_sim_s << " inferences per simulated second\n";
  } catch (const anvil::Error& e) {
    std::cerr << "classify: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
