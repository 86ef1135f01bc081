#include "passes.h"

#include "anvil/common/log.h"
#include "anvil/quantizer/quantizer.h"

namespace anvil::quant {

const std::vector<passes::Pass>& passes::pipeline() {
  static const std::vector<Pass> list = {
#define ANVIL_PASS(fn, name) {name, &passes::fn},
#include "passes.def"
#undef ANVIL_PASS
  };
  return list;
}

onnx::ModelProto optimize(const onnx::ModelProto& model) {
  onnx::ModelProto m = model;
  for (const passes::Pass& p : passes::pipeline()) {
    const int before = m.graph().node_size();
    p.run(m);
    log().debug("quantizer: pass {}: {} -> {} nodes", p.name, before, m.graph().node_size());
  }
  return m;
}

}  // namespace anvil::quant
