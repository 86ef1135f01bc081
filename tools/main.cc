/// anvil: quantize, compile, run and evaluate int8 models on the virtual Warboy-class NPU.
/// Every subcommand lives in its own file; errors from the libraries arrive here as anvil::Error
/// and become one line on stderr and exit code 1; so do command-line usage errors.
#include <malloc.h>

#include <algorithm>
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
  if (argc > 1 && argv[1][0] != '-') {  // CLI11 would only say that a subcommand is required
    try {
      app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      std::cerr << "anvil: error: unknown command '" << argv[1] << "' (see --help)\n";
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    // A usage error (an unknown option, a value outside its range, a missing output directory):
    // one line and exit code 1, like every other error of the tool.
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << "anvil: error: " << what << " (see --help)\n";
    return 1;
  } catch (const anvil::Error& e) {
    std::cerr << "anvil: error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "anvil: internal error: " << e.what() << '\n';
    return 2;
  }
  return 0;
}
