#include <set>

#include "passes.h"

namespace anvil::quant::passes {

/// Drops initializers no node reads (left behind by folding), and their graph-input entries.
void remove_dead_initializers(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  std::set<std::string> used;
  for (const auto& n : g.node())
    for (const auto& in : n.input()) used.insert(in);
  for (const auto& o : g.output()) used.insert(o.name());
  std::set<std::string> dead;
  auto* inits = g.mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (!used.count(inits->Get(i).name())) {
      dead.insert(inits->Get(i).name());
      inits->DeleteSubrange(i, 1);
    }
  auto* inputs = g.mutable_input();
  for (int i = inputs->size() - 1; i >= 0; --i)
    if (dead.count(inputs->Get(i).name())) inputs->DeleteSubrange(i, 1);
}

}  // namespace anvil::quant::passes
