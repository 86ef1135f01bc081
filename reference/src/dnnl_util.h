#pragma once
/// oneDNN helpers shared by the Conv kernel (ops_conv_pool.cc) and the Conv chains (conv_chain.cc).
/// Every call runs on the calling thread (see SerialDnnl in kernels.h).
#include <dnnl.hpp>

#include <vector>

namespace anvil::ref {

/// oneDNN's CPU engine, created once (engines are thread safe).
const dnnl::engine& cpu_engine();

/// Primitive attributes for calls made from several threads at once: each call brings its own
/// scratchpad (by default oneDNN shares one per creating thread, unsafe when primitives created on
/// one thread run on others).
dnnl::primitive_attr user_scratchpad();

/// user_scratchpad() plus, when `clamp`, y = min(max(y, lo), hi) as an eltwise post-op (oneDNN's
/// relu when lo = 0 and hi = +inf): a Relu/Clip fused into a Conv.
dnnl::primitive_attr user_scratchpad_with_clamp(bool clamp, float lo, float hi);

/// oneDNN's dilations count the gaps between taps: ONNX dilation - 1 per axis.
dnnl::memory::dims dnnl_dilations(const std::vector<int64_t>& onnx_dilations);

/// This thread's scratchpad for oneDNN calls, at least `desc`'s size, 64-byte aligned.
dnnl::memory scratchpad(const dnnl::memory::desc& desc);

/// Copies `from` into `to` (same dims, any layouts) on this thread.
void reorder(const dnnl::memory& from, const dnnl::memory& to, dnnl::stream& stream);

}  // namespace anvil::ref
