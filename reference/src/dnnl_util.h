#pragma once
/// oneDNN helpers shared by the Conv kernel (ops_conv_pool.cc) and the Conv chains (conv_chain.cc).
/// Every call runs on the calling thread (see SerialDnnl in kernels.h).
#include <dnnl.hpp>

namespace anvil::ref {

/// oneDNN's CPU engine, created once (engines are thread safe).
const dnnl::engine& cpu_engine();

/// Primitive attributes for calls made from several threads at once: each call brings its own
/// scratchpad (by default oneDNN shares one per creating thread, unsafe when primitives created on
/// one thread run on others).
dnnl::primitive_attr user_scratchpad();

/// This thread's scratchpad for oneDNN calls, at least `desc`'s size, 64-byte aligned.
dnnl::memory scratchpad(const dnnl::memory::desc& desc);

/// Copies `from` into `to` (same dims, any layouts) on this thread.
void reorder(const dnnl::memory& from, const dnnl::memory& to, dnnl::stream& stream);

}  // namespace anvil::ref
