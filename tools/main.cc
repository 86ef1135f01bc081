/// anvil: quantize, compile, run and evaluate int8 models on the virtual Warboy-class NPU.
/// Every subcommand lives in its own file; errors from the libraries arrive here as anvil::Error
/// and become one line on stderr and exit code 1.
#include <malloc.h>

#include <iostream>

#include "anvil/common/status.h"
#include "cli_common.h"

int main(int argc, char** argv) {
  // The executors allocate and free tensors of a few MB per node. With glibc's defaults, freed
  // memory at the top of the heap is returned to the OS (trim threshold 128 KB, raised only when
  // a large mmapped block happens to be freed) and every run faults it in again: vit at batch 100
  // took 27750 page faults for 20 runs, 4594 with these settings (docs/performance.md). Blocks
  // up to 16 MB come from the heap, and up to 32 MB of free heap top is kept.
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  CLI::App app{"anvil: an open virtual platform and SDK for a Warboy-class int8 NPU"};
  app.require_subcommand(1);
  anvil::cli::register_quantize(app);
  anvil::cli::register_calibrate(app);
  anvil::cli::register_compile(app);
  anvil::cli::register_run(app);
  anvil::cli::register_eval(app);
  anvil::cli::register_registers(app);
  anvil::cli::register_disasm(app);
  anvil::cli::register_ref(app);
  anvil::cli::register_bench(app);
  anvil::cli::register_device(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const anvil::Error& e) {
    std::cerr << "anvil: error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "anvil: internal error: " << e.what() << '\n';
    return 2;
  }
  return 0;
}
