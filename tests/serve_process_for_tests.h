#pragma once
// `anvil device serve ARGS` as a child process of a test (ANVIL_BINARY_DIR must name the build
// folder), with its stderr readable line by line. At scope end, unless it already exited, it is
// asked to stop (SIGTERM: it removes its socket), then killed if it has not within 5 s, and a
// socket file it left (killed by the test, say) is removed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace anvil::test {

class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--socket") socket_ = args[i + 1];
    int err[2];
    if (::pipe(err) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(err[1], 2);
      ::close(err[0]);
      ::close(err[1]);
      std::vector<std::string> argv{ANVIL_BINARY_DIR "/tools/anvil", "device", "serve"};
      argv.insert(argv.end(), args.begin(), args.end());
      std::vector<char*> raw;
      for (auto& a : argv) raw.push_back(a.data());
      raw.push_back(nullptr);
      ::execv(raw[0], raw.data());
      ::_exit(127);
    }
    ::close(err[1]);
    stderr_fd_ = err[0];
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int waited_ms = 0;
      while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
        if (waited_ms >= 5000) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, nullptr, 0);
          break;
        }
        ::usleep(10000);
        waited_ms += 10;
      }
      // It served on the socket until now (a server that exited by itself, e.g. finding the path
      // in use, never owned it): a SIGKILL leaves the file behind.
      if (!socket_.empty()) ::unlink(socket_.c_str());
    }
    ::close(stderr_fd_);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  /// stderr up to the next newline (the "listening" line once the socket accepts clients, or the
  /// one-line error).
  std::string first_line() {
    std::string line;
    char c;
    while (::read(stderr_fd_, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }
  /// Waits for the process to end; its waitpid status.
  int wait_exit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::string socket_;
};

}  // namespace anvil::test
