#pragma once
/// Numpy-style (multidirectional) broadcasting, shared by the elementwise operators and MatMul.
#include <array>
#include <tuple>
#include <vector>

#include "anvil/common/tensor.h"

namespace anvil::ref {

/// The broadcast shape of a and b; throws kInvalidArgument naming both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);

/// Element strides of `in` read at the positions of `out` (0 along broadcast dimensions), with
/// `in` right-aligned to `out`'s rank.
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);

/// Calls f(out_index, offset_0, offset_1, ...) for every element of `out`, where offset_k is the
/// element offset in input k (strides from broadcast_strides). Runs in row-major order.
template <size_t K, typename F>
void for_each_broadcast(const Shape& out, const std::array<std::vector<int64_t>, K>& strides, F f) {
  const size_t rank = out.size();
  const int64_t total = shape_numel(out);
  std::vector<int64_t> idx(rank, 0);
  std::array<int64_t, K> off{};
  for (int64_t i = 0; i < total; ++i) {
    std::apply([&](auto... o) { f(i, o...); }, off);
    for (size_t d = rank; d-- > 0;) {
      ++idx[d];
      for (size_t k = 0; k < K; ++k) off[k] += strides[k][d];
      if (idx[d] < out[d]) break;
      for (size_t k = 0; k < K; ++k) off[k] -= strides[k][d] * idx[d];
      idx[d] = 0;
    }
  }
}

}  // namespace anvil::ref
