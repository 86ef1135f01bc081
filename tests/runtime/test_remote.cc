// The device as a separate process: a runtime attached to a device server (`unix:PATH`) over a
// Unix socket and shared memory must produce what the in-process device and the reference
// executor produce, bit for bit; lost, missing, busy and wrong-version servers are typed errors,
// never hangs; a client that vanishes leaves the server usable.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "anvil/hw/platform.h"
#include "anvil/isa/device.h"
#include "anvil/runtime/device_server.h"
#include "anvil/runtime/runtime.h"
#include "device_protocol.h"
#include "golden_conv.h"
#include "program_builder.h"
#include "remote_link.h"
#include "serve_process_for_tests.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::golden_graph;
using anvil::testing::random_int8;

std::string socket_path(const char* name) {
  return "/tmp/anvil_test_remote_" + std::to_string(::getpid()) + "_" + name + ".sock";
}

/// A device server on a thread of this process, stopped and removed at scope end.
struct ServerThread {
  explicit ServerThread(const std::string& path, hw::HwConfig config = hw::HwConfig::preset("warboy-2pe"))
      : ServerThread(options_for(path, config)) {}
  explicit ServerThread(const ServeOptions& o) {
    server = std::make_unique<DeviceServer>(o);
    thread = std::thread([this] { server->run(); });
  }
  static ServeOptions options_for(const std::string& path, const hw::HwConfig& config) {
    ServeOptions o;
    o.socket_path = path;
    o.config = config;
    return o;
  }
  ~ServerThread() {
    server->stop();
    thread.join();
  }
  std::unique_ptr<DeviceServer> server;
  std::thread thread;
};

ConvLayer test_layer() {
  ConvLayer g;
  g.ic = 8, g.h = 12, g.w = 12, g.oc = 16;
  return ConvLayer::random(77, g);
}

Tensor input_for(const ConvLayer& g, uint32_t seed) {
  return Tensor::from_vector<int8_t>({1, g.ic, g.h, g.w}, random_int8(g.ic * g.h * g.w, seed));
}

Tensor reference_output(const ConvLayer& g, const isa::Program& p, const Tensor& x) {
  tbb::task_arena one_thread(1);
  Tensor y;
  one_thread.execute([&] { y = ref::run_int8(golden_graph(g, p), {{"x", x}}).value().at("y"); });
  return y;
}

TEST(RemoteDevice, RunMatchesTheInProcessDeviceAndTheReferenceBitForBit) {
  const ConvLayer g = test_layer();
  const isa::Program program = g.program();
  const Tensor x = input_for(g, 5);
  TensorMap local;
  RunStats local_stats;
  {
    Device d = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy-2pe"));
    Session s(d, program);
    local = s.run({{"x", x}});
    local_stats = s.last_stats();
  }
  const std::string path = socket_path("run");
  ServerThread server(path);
  {
    // The local settings do not apply to a server's chip, so invalid ones are not checked either.
    hw::HwConfig invalid = hw::HwConfig::preset("warboy");
    invalid.mac_rows = 0;
    EXPECT_EQ(Device::open("unix:" + path, invalid).config().mac_rows, hw::HwConfig::preset("warboy-2pe").mac_rows);
  }
  Device d = Device::open("unix:" + path, hw::HwConfig::preset("warboy"));  // the server's chip counts
  EXPECT_EQ(d.config().num_pes, 2u);
  EXPECT_EQ(d.units(), std::vector<uint32_t>{1});
  Session s(d, program);
  const TensorMap remote = s.run({{"x", x}});
  EXPECT_TRUE(remote.at("y") == local.at("y"));
  EXPECT_TRUE(remote.at("y") == reference_output(g, program, x));
  // The same simulated chip: the same cycles.
  EXPECT_EQ(s.last_stats().cycles, local_stats.cycles);
  EXPECT_EQ(s.last_stats().request_cycles, local_stats.request_cycles);
  EXPECT_TRUE(d.counters().is_object());
  // The debug interfaces travel too: a traced run's events come back, and are cleared.
  auto complete_events = [&d] {
    const nlohmann::json trace = d.trace_json();
    int n = 0;
    for (const auto& e : trace.at("traceEvents")) n += e.at("ph") == "X";
    return n;
  };
  d.set_trace(true);
  s.run({{"x", x}});
  EXPECT_GT(complete_events(), 0);
  d.clear_trace();
  EXPECT_EQ(complete_events(), 0);
}

TEST(RemoteDevice, ThreadsSubmitAndReceiveOnBothPesOfTheServer) {
  const ConvLayer g = test_layer();
  const isa::Program program = g.program();
  constexpr int kThreads = 3, kPerThread = 6;
  std::map<int, Tensor> inputs, want;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    inputs[i] = input_for(g, 100 + i);
    want[i] = reference_output(g, program, inputs[i]);
  }
  const std::string path = socket_path("async");
  ServerThread server(path);
  Device d = Device::open("unix:" + path + "#warboy(2)*1", {});
  ASSERT_EQ(d.units().size(), 2u);
  SessionOptions opt;
  opt.queue_depth = 4;
  Session s(d, program, opt);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t)
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) s.submit({{"x", inputs.at(t * kPerThread + i)}}, t * kPerThread + i);
    });
  std::mutex mutex;
  std::map<int, int> seen;
  std::vector<std::string> problems;
  std::vector<std::thread> receivers;
  for (int r = 0; r < 2; ++r)
    receivers.emplace_back([&] {
      for (int n = 0; n < kThreads * kPerThread / 2; ++n) {
        const Request q = s.receive(60.0);
        std::lock_guard<std::mutex> lock(mutex);
        const int k = std::any_cast<int>(q.context());
        seen[k]++;
        if (q.state() != RequestState::kCompleted) problems.push_back(q.error_message());
        else if (!(q.outputs().at("y") == want.at(k))) problems.push_back("request " + std::to_string(k) + " differs");
      }
    });
  for (auto& t : submitters) t.join();
  for (auto& t : receivers) t.join();
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
  const SessionStats st = s.stats();
  EXPECT_EQ(st.completed, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_GT(st.per_unit.at(0), 0u);
  EXPECT_GT(st.per_unit.at(1), 0u);
}

TEST(RemoteDevice, NoServerAtThePathIsADeviceErrorNamingIt) {
  const std::string path = socket_path("nobody");
  try {
    Device::open("unix:" + path, {});
    FAIL() << "opened a device without a server";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(Device::open("unix:", {}), Error);
  EXPECT_THROW(Device::open("unix:" + path + "#npu0pe7", {}), Error);
  EXPECT_THROW(Device::open("unix:/" + std::string(200, 'a'), {}), Error);  // too long for a socket address
  // A sweep changes the chip's config, which a server's chip does not allow.
  const ConvLayer g = test_layer();
  try {
    sweep("unix:" + path, {}, "dram_gbps", {"33"}, g.program(), {});
    FAIL() << "swept a device server's config";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
}

TEST(RemoteDevice, ProtocolVersionMismatchIsAClearErrorOnBothSides) {
  // A runtime speaking another version is refused by the server.
  const std::string path = socket_path("version");
  {
    ServerThread server(path);
    try {
      RemoteLink link(path, proto::kVersion + 1);
      FAIL() << "a version " << proto::kVersion + 1 << " client was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
      EXPECT_NE(std::string(e.what()).find("protocol version"), std::string::npos) << e.what();
    }
    // The server still serves a runtime that speaks its version.
    Device d = Device::open("unix:" + path, {});
    EXPECT_TRUE(static_cast<bool>(d));
  }
  // A server speaking another version is refused by the runtime.
  const std::string fake = socket_path("fake");
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", fake.c_str());
  ::unlink(fake.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::thread fake_server([&] {
    const int c = ::accept(listener, nullptr, nullptr);
    proto::Message hello;
    if (proto::receive_message(c, hello))
      proto::send_message(c, proto::kReply, hello.seq, proto::Writer().u32(proto::kVersion + 1).str("{}").take());
    proto::receive_message(c, hello);  // until the runtime hangs up
    ::close(c);
  });
  try {
    Device::open("unix:" + fake, {});
    ADD_FAILURE() << "attached to a server of another protocol version";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
    EXPECT_NE(std::string(e.what()).find("speaks protocol version " + std::to_string(proto::kVersion + 1)),
              std::string::npos) << e.what();
  }
  fake_server.join();
  ::close(listener);
  ::unlink(fake.c_str());
}

/// One thread streams requests on a device while this one power-cycles the chip with a second
/// Device::open (which frees every host buffer of the first): the first device's calls and
/// requests end with kClosed, never a use of freed or unmapped memory (run it under ASan too).
void reopen_while_streaming(const std::string& spec) {
  const ConvLayer g = test_layer();
  const isa::Program program = g.program();
  const Tensor x = input_for(g, 5);
  for (int round = 0; round < 6; ++round) {
    Device first = Device::open(spec, hw::HwConfig::preset("warboy"));
    std::atomic<int> submitted{0};
    std::atomic<bool> ended{false};
    std::vector<ErrorCode> errors;  // written by the stream thread only, read after join
    std::thread stream([&] {
      try {
        SessionOptions o;
        o.queue_depth = 4;
        Session s(first, program, o);
        while (errors.empty()) {
          std::vector<Request> requests;
          for (int i = 0; i < 4; ++i, ++submitted) requests.push_back(s.submit({{"x", x}}));
          for (const Request& r : requests)
            if (r.wait(60.0) == RequestState::kError) errors.push_back(r.error_code());
        }
      } catch (const Error& e) {
        errors.push_back(e.code());
      }
      ended = true;
    });
    while (submitted < 4 * (1 + round % 3) && !ended) std::this_thread::yield();
    Device second = Device::open(spec, hw::HwConfig::preset("warboy"));
    stream.join();
    ASSERT_FALSE(errors.empty());
    for (ErrorCode c : errors) EXPECT_EQ(c, ErrorCode::kClosed) << spec << ", round " << round << ": " << to_string(c);
    Session s(second, program);
    EXPECT_TRUE(s.run({{"x", x}}).at("y") == reference_output(g, program, x)) << spec << ", round " << round;
  }
}

TEST(RemoteDevice, APowerCycleUnderAStreamingDeviceFailsItsWorkWithClosedLocallyAndRemotely) {
  reopen_while_streaming("warboy(1)*1");
  const std::string path = socket_path("reopen");
  ServerThread server(path, hw::HwConfig::preset("warboy"));
  reopen_while_streaming("unix:" + path);
}

/// A scripted device server on a thread: answers HELLO, then hands every other request to
/// `handle` until the runtime hangs up (HOST_FREE and BYE are ignored / answered for it).
struct FakeServer {
  using Handler = std::function<void(int socket, const proto::Message& request)>;
  FakeServer(const std::string& p, Handler handle) : path(p) {
    listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const sockaddr_un addr = proto::unix_address(path);
    ::unlink(path.c_str());
    if (::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 1) != 0)
      throw std::runtime_error("fake server: cannot listen at " + path);
    thread = std::thread([this, handle] {
      const int c = ::accept(listener, nullptr, nullptr);
      proto::Message m;
      try {
        while (proto::receive_message(c, m)) {
          if (m.op == proto::kHello)
            proto::send_message(c, proto::kReply, m.seq, proto::Writer().u32(proto::kVersion).str("{}").take());
          else if (m.op == proto::kBye) proto::send_message(c, proto::kReply, m.seq, {});
          else if (m.op != proto::kHostFree) handle(c, m);
        }
      } catch (const Error&) {
      }
      ::close(c);
    });
  }
  ~FakeServer() {
    thread.join();
    ::close(listener);
    ::unlink(path.c_str());
  }
  std::string path;
  int listener = -1;
  std::thread thread;
};

/// A memfd of `bytes` bytes named `name` (the caller closes it).
int memfd_of(const char* name, uint64_t bytes) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) throw std::runtime_error("memfd_create");
  return fd;
}

/// Descriptors of this process whose target mentions `name`.
int open_fds_named(const std::string& name) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec).string().find(name) != std::string::npos) n++;
  }
  return n;
}

TEST(RemoteDevice, AServerThatAnswersBadlyGetsTypedErrorsNeitherACrashNorALeak) {
  const std::string path = socket_path("liar");
  {
    FakeServer fake(path, [](int c, const proto::Message& m) {
      switch (m.op) {
        case proto::kHostAlloc: {  // a buffer smaller than asked: 1 byte, or a memfd shorter than it claims
          const uint64_t bytes = proto::Reader(m).u64();
          const int fd = memfd_of("anvil-test-short", 1);
          proto::send_message(c, proto::kReply, m.seq, proto::Writer().u64(0x1000).u64(bytes == 4096 ? 1 : bytes).take(), fd);
          ::close(fd);
          return;
        }
        case proto::kRead32:  // an error code no anvil::ErrorCode has
          proto::send_message(c, proto::kError, m.seq, proto::Writer().u32(78).str("strange").take());
          return;
        case proto::kWrite32: {  // descriptors on an interrupt and on a reply that carries none
          const int fd = memfd_of("anvil-test-stray", 16);
          proto::send_message(c, proto::kInterrupt, 0, proto::Writer().u32(0).take(), fd);
          proto::send_message(c, proto::kReply, m.seq, {}, fd);
          ::close(fd);
          return;
        }
        default:
          proto::send_message(c, proto::kReply, m.seq, proto::Writer().u8(1).take());
      }
    });
    RemoteLink link(path);
    for (const uint64_t bytes : {uint64_t{4096}, uint64_t{8192}}) {
      try {
        link.host_alloc(bytes);
        ADD_FAILURE() << "a short HOST_ALLOC reply was mapped";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
        EXPECT_NE(std::string(e.what()).find(path + ": HOST_ALLOC of " + std::to_string(bytes) + " bytes answered"),
                  std::string::npos) << e.what();
      }
    }
    try {
      link.read32(0);
      ADD_FAILURE() << "an ERROR reply was not thrown";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
      EXPECT_NE(std::string(e.what()).find(path + ": ERROR reply to READ32 with unknown error code 78: strange"),
                std::string::npos) << e.what();
    }
    link.write32(0, 0);
    EXPECT_TRUE(link.idle());  // served after the write's messages: every descriptor has arrived
    EXPECT_EQ(open_fds_named("anvil-test-stray"), 0);
    EXPECT_EQ(open_fds_named("anvil-test-short"), 0);
  }
}

/// A connection to the Unix socket at `path` (the caller closes it).
int connect_to(const std::string& path) {
  const int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
  const sockaddr_un addr = proto::unix_address(path);
  if (::connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect");
  return c;
}

TEST(RemoteDevice, AConnectionThatNeverSaysHelloIsDroppedAndDoesNotHoldTheDevice) {
  ServeOptions o = ServerThread::options_for(socket_path("silent"), hw::HwConfig::preset("warboy"));
  o.hello_timeout_s = 0.2;
  ServerThread server(o);
  const int silent = connect_to(o.socket_path);
  // The server hangs up on it after hello_timeout_s (the 10 s bound only fails the test).
  pollfd p{silent, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the silent connection was never dropped";
  char c;
  EXPECT_EQ(::read(silent, &c, 1), 0);
  ::close(silent);
  Device d = Device::open("unix:" + o.socket_path, {});
  EXPECT_TRUE(static_cast<bool>(d));
  EXPECT_EQ(server.server->clients_served(), 0u) << "a connection without HELLO is no client";
}

TEST(RemoteDevice, AOnceServerProbedByAnotherServerStillServesItsClient) {
  ServeOptions o = ServerThread::options_for(socket_path("once"), hw::HwConfig::preset("warboy"));
  o.once = true;
  auto server = std::make_unique<DeviceServer>(o);
  std::thread thread([&] { server->run(); });
  try {  // a second server on the path probes the socket (connects and closes) and refuses to start
    DeviceServer second(o);
    ADD_FAILURE() << "two servers on one path";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
  try {
    Device d = Device::open("unix:" + o.socket_path, {});
    const ConvLayer g = test_layer();
    const isa::Program program = g.program();
    const Tensor x = input_for(g, 4);
    Session s(d, program);
    EXPECT_TRUE(s.run({{"x", x}}).at("y") == reference_output(g, program, x));
  } catch (const Error& e) {
    ADD_FAILURE() << "the once server did not serve its client: " << e.what();
    server->stop();
  }
  thread.join();  // the client said BYE: a once server returns
  EXPECT_EQ(server->clients_served(), 1u);
}

TEST(RemoteDevice, AClientThatVanishesLeavesTheServerUsableAndASecondProcessIsRefusedAsBusy) {
  const std::string path = socket_path("vanish");
  ServerThread server(path);
  {
    // A runtime that dies mid-session: it greets, takes host memory, rings a doorbell and is gone
    // without saying BYE.
    const int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    proto::Message m;
    proto::send_message(c, proto::kHello, 1, proto::Writer().u32(proto::kMagic).u32(proto::kVersion).take());
    ASSERT_TRUE(proto::receive_message(c, m));
    ASSERT_EQ(m.op, proto::kReply);
    proto::send_message(c, proto::kHostAlloc, 2, proto::Writer().u64(4096).take());
    ASSERT_TRUE(proto::receive_message(c, m));
    ASSERT_EQ(m.op, proto::kReply);
    EXPECT_GE(m.fd, 0);
    if (m.fd >= 0) ::close(m.fd);
    proto::send_message(c, proto::kWrite32, 3, proto::Writer().u32(isa::reg::SQ_TAIL).u32(5).take());
    ::close(c);
  }
  const ConvLayer g = test_layer();
  const isa::Program program = g.program();
  const Tensor x = input_for(g, 9);
  {
    Device d = Device::open("unix:" + path, {});
    Session s(d, program);
    EXPECT_TRUE(s.run({{"x", x}}).at("y") == reference_output(g, program, x));
    // While this process is attached, another one is refused at once.
    try {
      RemoteLink second(path);
      ADD_FAILURE() << "a second client was attached";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBusy) << e.what();
    }
  }
  // After an orderly goodbye the next client is served at once.
  Device d = Device::open("unix:" + path, {});
  Session s(d, program);
  EXPECT_TRUE(s.run({{"x", x}}).at("y") == reference_output(g, program, x));
}

using test::ServeProcess;

TEST(RemoteDevice, AServerKilledMidRunFailsEveryRequestWithATypedErrorAndNothingHangs) {
  const std::string path = socket_path("killed");
  ServeProcess server({"--socket", path});
  ASSERT_NE(server.first_line().find("listening on " + path), std::string::npos);
  const ConvLayer g = test_layer();
  const isa::Program program = g.program();
  Device d = Device::open("unix:" + path + "#warboy(2)*1", {});
  SessionOptions opt;
  opt.queue_depth = 8;
  opt.timeout_s = 30;
  opt.device_timeout_s = 30;
  Session s(d, program, opt);
  std::vector<Request> requests;
  for (int i = 0; i < 8; ++i) requests.push_back(s.submit({{"x", input_for(g, 300 + i)}}));
  ::kill(server.pid(), SIGKILL);
  server.wait_exit();
  std::filesystem::remove(path);  // a killed server leaves its socket file behind
  for (const Request& r : requests) {
    const RequestState st = r.wait(30.0);
    ASSERT_NE(st, RequestState::kTimeout) << "a request hung after the server died";
    if (st == RequestState::kError) {
      EXPECT_EQ(r.error_code(), ErrorCode::kDeviceError) << r.error_message();
    }
  }
  try {
    s.submit({{"x", input_for(g, 1)}});
    FAIL() << "submitted to a dead server";
  } catch (const Error& e) {
    EXPECT_TRUE(e.code() == ErrorCode::kClosed || e.code() == ErrorCode::kDeviceError) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(d.counters(), Error);
  // Its socket file is left behind, with nobody listening.
  try {
    Device::open("unix:" + path, {});
    FAIL() << "attached to a dead server";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError) << e.what();
  }
  ::unlink(path.c_str());
}

TEST(RemoteDevice, ServeCommandStopsCleanlyOnSigtermAndReportsAPathInUseAndABadConfig) {
  const std::string path = socket_path("cli");
  ServeProcess first({"--socket", path});
  ASSERT_NE(first.first_line().find("listening"), std::string::npos);
  {
    ServeProcess second({"--socket", path});
    const std::string line = second.first_line();
    EXPECT_NE(line.find("in use"), std::string::npos) << line;
    const int status = second.wait_exit();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  }
  {
    ServeProcess bad({"--socket", socket_path("bad"), "--set", "num_pes=7"});
    const std::string line = bad.first_line();
    EXPECT_NE(line.find("num_pes"), std::string::npos) << line;
    const int status = bad.wait_exit();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  }
  ::kill(first.pid(), SIGTERM);
  const int status = first.wait_exit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file was left behind";
}

}  // namespace
}  // namespace anvil::rt
