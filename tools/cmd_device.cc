/// anvil device serve --socket PATH [--preset P] [--hw-config FILE] [--set key=value]... [--once]
/// The virtual device as its own process: runtimes attach with the device spec unix:PATH.
#include <csignal>
#include <iostream>

#include "anvil/runtime/device_server.h"
#include "cli_common.h"

namespace anvil::cli {

namespace {
rt::DeviceServer* g_server = nullptr;  ///< the server SIGINT/SIGTERM stop

extern "C" void stop_server(int) {
  if (g_server) g_server->stop();  // one write(2): async-signal-safe
}
}  // namespace

void register_device(CLI::App& app) {
  CLI::App* device = app.add_subcommand("device", "the virtual device as a separate process");
  device->require_subcommand(1);
  CLI::App* cmd = device->add_subcommand(
      "serve", "simulate the chip and serve runtimes that attach with --device unix:PATH (one process at a time)");
  struct Options {
    std::string socket, preset = "warboy-2pe", hw_config;
    std::vector<std::string> sets;
    bool once = false;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--socket", o->socket, "Unix domain socket path to listen on")->required();
  CLI::Option* preset =
      cmd->add_option("--preset", o->preset, "hardware preset: warboy or warboy-2pe (default: warboy-2pe, both PEs)");
  cmd->add_option("--hw-config", o->hw_config, "hardware configuration JSON (instead of --preset)")->excludes(preset);
  cmd->add_option("--set", o->sets, "override one hardware parameter: key=value (repeatable)");
  cmd->add_flag("--once", o->once, "exit after the first client disconnected");
  cmd->callback([o] {
    rt::ServeOptions options;
    options.socket_path = o->socket;
    options.config = o->hw_config.empty() ? hw::HwConfig::preset(o->preset) : hw::HwConfig::from_json_file(o->hw_config);
    for (const std::string& s : o->sets) options.config.set(s);
    options.once = o->once;
    rt::DeviceServer server(options);
    g_server = &server;
    struct sigaction sa {};
    sa.sa_handler = stop_server;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::cerr << "anvil device serve: listening on " << o->socket << " (" << options.config.num_pes
              << " PE(s)); attach with --device unix:" << o->socket << std::endl;
    try {
      server.run();
    } catch (...) {
      g_server = nullptr;
      throw;
    }
    g_server = nullptr;
    std::cerr << "anvil device serve: stopped after " << server.clients_served() << " client(s)" << std::endl;
  });
}

}  // namespace anvil::cli
