#pragma once
/// Lowers the ops of an integer graph, in graph order, to instructions. Every instruction's waits
/// come from the DependencyTracker.
///
/// Residency: a layer's output stays in SRAM for its consumers; it is stored to DRAM only when it
/// is a graph output (right after it is computed) or when SRAM is needed for something else
/// (evicted: the resident value read again furthest in the future goes first). Inputs already in
/// SRAM are not loaded again. A buffer is released one layer after its last use.
///
/// Tiling: a layer whose working set does not fit next to what must stay resident runs from DRAM
/// to DRAM in tiles (residents are stored first): conv over groups of output channels (with their
/// slices of weights, bias, multipliers and shifts) and over output rows (with the input rows the
/// windows need, the halo); pooling over channels and rows; add, requant and lut over element
/// ranges (a lut's table is loaded once for all its tiles); matmul over rows of A (B shared) or over
/// batch products, softmax over its outer rows (RowTiling), a matmul whose B does not fit even so
/// within its products (blocks of B's columns x blocks of A's rows); data movement (transpose, slice,
/// concat, pad) over rows of the output's outermost axis where each reads whole input rows.
/// When two tiles' buffers fit, tiles alternate between them, so the DMA of tile k+1 only waits
/// for the compute of tile k-1 and overlaps tile k.
#include <array>
#include <functional>
#include <optional>
#include <vector>

#include "anvil/compiler/compiler.h"
#include "dependency_tracker.h"
#include "dram_plan.h"
#include "sram_plan.h"

namespace anvil::compiler {

class Lowering {
 public:
  Lowering(const ref::Int8Graph& graph, const Target& target, const DramPlan& plan, isa::Program& program);
  /// Appends the instructions of one op (none for a reshape) and returns its report line.
  /// `op` must be an element of the graph's ops, lowered in order. Throws kInvalidArgument /
  /// kUnsupported naming the node.
  LayerReport lower(const ref::Int8Op& op);
  uint64_t sram_peak() const { return sram_.peak(); }
  /// After the last op: fills one aliasing graph output (DramPlan::io_copies) from the IO tensor
  /// whose bytes it shares, through SRAM (DMA loads and stores of chunks as large as SRAM allows).
  /// Returns its report line (node = the output's name, op = "io_copy").
  LayerReport lower_io_copy(const IoCopy& copy);

  /// A tile of a window op (conv, pooling): channel units [u0, u1) and output rows [r0, r1); of an
  /// elementwise op: elements [u0, u1).
  struct Tile {
    int64_t u0 = 0, u1 = 0, r0 = 0, r1 = 0;
    int64_t in_r0 = 0, in_r1 = 0;  ///< input rows the tile reads
  };
  /// How an op's work divides into tiles.
  struct TileSpace {
    bool window = true;                   ///< false: elementwise over `units` elements
    int64_t n = 1, in_c = 0, in_h = 1, in_w = 1, out_h = 1, out_w = 1;
    int64_t units = 0;                    ///< channel units (window) or elements
    int64_t unit_in_c = 0;                ///< input channels per unit; 0: every tile reads all of them
    int64_t unit_out_c = 1;               ///< output channels per unit
    int64_t window_h = 1, stride_h = 1, pad_top = 0;
    std::function<uint64_t(int64_t)> const_bytes;  ///< SRAM bytes of the constants of a tile of k units
  };
  /// One kCopy of a data-movement op, in elements: `shape` visited with input strides from
  /// in_offset (input -1: a fill) and output strides from out_offset.
  struct Move {
    int input = -1;
    std::vector<int64_t> shape, in_strides, out_strides;
    int64_t in_offset = 0, out_offset = 0;
  };
  /// Builds the compute instruction of a tile from its SRAM addresses.
  using Builder = std::function<isa::Instruction(const Tile&, const std::vector<uint64_t>& in_addrs,
                                                 uint64_t const_addr, uint64_t out_addr)>;
  /// Appends the constants of units [u0, u1) to the constant section; returns their DRAM offset.
  using AddConstants = std::function<uint64_t(int64_t u0, int64_t u1)>;
  /// A kBinary's output as isa::kBinaryRank extents with each operand's element strides (0 where
  /// it is broadcast); built by binary_shape in lowering.cc.
  struct BinaryShape {
    std::array<int64_t, isa::kBinaryRank> extent{}, a_stride{}, b_stride{};
    int tiled_dim = isa::kBinaryRank - 1;  ///< the outermost dimension with extent > 1 (tiles split it)
  };

  /// How an op whose work splits over leading units (kMatMul's rows or products, kSoftmax's outer
  /// rows) is tiled when it does not fit resident: a tile of units [u0, u1) reads bytes
  /// [u0 * b, u1 * b) of input i (b = in_unit_bytes[i]; 0: the whole input, loaded once for every
  /// tile) and writes bytes [u0 * out_unit_bytes, u1 * out_unit_bytes) of the output; its
  /// constants (const_bytes, units-independent) are loaded once.
  struct RowTiling {
    int64_t units = 0;
    std::vector<uint64_t> in_unit_bytes;
    uint64_t out_unit_bytes = 0;
    uint64_t const_bytes = 0;
  };
  /// Builds the compute instruction of units [u0, u1) from its SRAM addresses.
  using RowBuilder = std::function<isa::Instruction(int64_t u0, int64_t u1, const std::vector<uint64_t>& in_addrs,
                                                    uint64_t const_addr, uint64_t out_addr)>;

 private:
  struct Resident {
    uint64_t addr = 0;
    bool dirty = false;  ///< not (yet) in its DRAM home
  };

  void emit(isa::Instruction inst);
  /// One DMA of `rows` x `row_bytes`.
  void emit_dma(isa::Opcode op, isa::Region region, uint64_t dram, uint64_t sram, uint64_t row_bytes,
                uint64_t rows = 1, uint64_t dram_stride = 0);
  /// Moves the box [c0, c1) x [h0, h1) of an N x C x H x W tensor at `dram` between DRAM and
  /// `sram` (packed N x (c1-c0) x (h1-h0) x W there), in as few DMAs as the strides allow.
  void emit_box(isa::Opcode op, const ValueHome& home, int64_t n, int64_t c, int64_t h, int64_t w, int64_t c0,
                int64_t c1, int64_t h0, int64_t h1, uint64_t sram);
  /// Appends bytes to the constant section at a 64-byte aligned offset; returns the offset.
  uint64_t add_constant(const void* data, size_t bytes);
  /// AddConstants for one block every tile shares (a table, a constant operand): appended to the
  /// constant section on the first call, the same offset returned on every call. `data` must
  /// outlive the op's lowering.
  AddConstants constant_once(const void* data, size_t bytes);

  /// Lowers one op: resident when its working set fits, else tiled (by `tiled` when given, else
  /// by lower_tiled).
  void lower_op(const ref::Int8Op& op, const TileSpace& space, const Builder& build, const AddConstants& consts,
                const std::function<void()>& tiled = nullptr);
  /// The op's inputs in SRAM, its output left resident. False (nothing emitted) when it does not fit.
  bool lower_resident(const ref::Int8Op& op, const TileSpace& space, const Builder& build, const AddConstants& consts);
  void lower_tiled(const ref::Int8Op& op, const TileSpace& space, const Builder& build, const AddConstants& consts);
  /// Frees the previous layer's released buffers and defers this layer's (end of every lowered op).
  void end_layer();
  /// Lowers an op tiled by RowTiling: resident when it fits, else lower_rows_tiled.
  void lower_rows(const ref::Int8Op& op, const RowTiling& tiling, const RowBuilder& build, const AddConstants& consts);
  /// From DRAM to DRAM in tiles of leading units (two buffer sets when they fit, so the DMA of tile
  /// k+1 overlaps tile k); kUnsupported naming the node when one unit does not fit SRAM.
  void lower_rows_tiled(const ref::Int8Op& op, const RowTiling& tiling, const RowBuilder& build,
                        const AddConstants& consts);

  std::optional<uint64_t> allocate(uint64_t bytes, const std::vector<int>& pinned);
  /// A buffer of a tiled layer, packed from address 0 after flush().
  uint64_t allocate_in_empty_sram(uint64_t bytes);
  void store(int root);
  void evict(int root);
  /// Stores every dirty resident value that is still needed and releases all SRAM.
  void flush();
  /// Releases the buffers whose release was deferred by one layer.
  void release_deferred();
  int next_use(int root) const;
  uint64_t bytes_of(int value) const;

  void lower_conv(const ref::Int8Op& op);
  void lower_add(const ref::Int8Op& op);
  void lower_pool(const ref::Int8Op& op);
  void lower_resize(const ref::Int8Op& op);
  /// The tile space of a one-input elementwise op (kRequant, kLut): checks one input of the
  /// output's element count.
  TileSpace elementwise_space(const ref::Int8Op& op) const;
  void lower_requant(const ref::Int8Op& op);
  void lower_lut(const ref::Int8Op& op);
  void lower_matmul(const ref::Int8Op& op);
  /// A kMatMul whose batch dimensions broadcast across both operands (ref::MatMulDims::cross):
  /// both operands whole in SRAM, products in tiles; each tile one kMatMul per run of products
  /// whose A and B matrices each stay or advance by one (e.g. [2,1] x [1,3]: two runs of three).
  void lower_matmul_cross(const ref::Int8Op& op, const ref::MatMulDims& d, const isa::Instruction& proto);
  /// SRAM bytes of the smallest tile lower_rows_tiled can make (the shared inputs and constants
  /// plus one unit); above the capacity it refuses the op.
  uint64_t smallest_row_tile(const ref::Int8Op& op, const RowTiling& tiling) const;
  /// A kMatMul of which not even one unit fits SRAM (a B too large): per product, blocks of B's
  /// columns (one strided DMA each) times blocks of A's rows, DRAM to DRAM, one buffer set.
  void lower_matmul_columns(const ref::Int8Op& op, const ref::MatMulDims& d, const isa::Instruction& proto);
  void lower_softmax(const ref::Int8Op& op);
  /// kAdd with broadcasting or a constant operand, kSub (constant - x included: the constant is
  /// operand a), kMul: one kBinary per tile.
  void lower_binary(const ref::Int8Op& op);
  /// DRAM to DRAM in tiles of rows of the tiled dimension; an operand broadcast along it is
  /// loaded once for all tiles.
  void lower_binary_tiled(const ref::Int8Op& op, const BinaryShape& shape, const Builder& build,
                          const AddConstants& consts);
  /// kTranspose, kSlice, kConcat, kPad: a few kCopy instructions, resident or tiled over the
  /// output's outermost axis (see lowering.cc).
  void lower_movement(const ref::Int8Op& op);
  isa::Instruction copy_instruction(const ref::Int8Op& op, Move m) const;
  void lower_movement_tiled(const ref::Int8Op& op, const std::vector<Move>& moves);

  const ref::Int8Graph& graph_;
  const Target& target_;
  const DramPlan& plan_;
  isa::Program& program_;
  SramAllocator sram_;
  DependencyTracker deps_;
  std::vector<int> root_;                 ///< per value: the value whose bytes it shares (reshape)
  std::vector<std::vector<int>> uses_;    ///< per root: indices of the ops reading it, ascending
  std::vector<bool> graph_output_;        ///< per root
  std::vector<std::optional<Resident>> resident_;  ///< per root
  std::vector<uint64_t> deferred_, releasing_;     ///< SRAM buffers released after the next / this layer
  int current_ = 0;                       ///< index of the op being lowered
  LayerReport* report_ = nullptr;         ///< the report line of the op being lowered
};

}  // namespace anvil::compiler
