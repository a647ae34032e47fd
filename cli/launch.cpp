// The single-node launcher: fork + exec of /proc/self/exe once per rank, the environment
// torchrun would set, signal forwarding, and the worst rank's exit status.
#include "cli/launch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>

#include "core/error.hpp"

namespace ventral::cli {

namespace {

volatile std::sig_atomic_t g_forward = 0, g_received = 0;  // the last signal, and how many arrived
extern "C" void on_launcher_signal(int sig) {
  g_forward = sig;
  g_received = g_received + 1;
}

// A TCP port that is free on 127.0.0.1 now (the kernel picks it; rank 0 binds it moments later).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw InputError(std::string("--nproc: cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw InputError(std::string("--nproc: cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Prints the error lines the ranks wrote into `folder` (rank.N), each distinct line once, and
// removes the folder.
void report_rank_errors(const std::string& folder, int nproc) {
  std::vector<std::pair<std::string, std::vector<int>>> lines;  // in the order ranks said them
  for (int r = 0; r < nproc; ++r) {
    std::ifstream in(folder + "/rank." + std::to_string(r));
    for (std::string line; std::getline(in, line);) {
      auto it = std::find_if(lines.begin(), lines.end(), [&](const auto& l) { return l.first == line; });
      if (it == lines.end()) lines.push_back({line, {r}});
      else if (it->second.back() != r) it->second.push_back(r);
    }
  }
  for (const auto& [line, ranks] : lines) {
    std::string who;
    if (ranks.size() != static_cast<size_t>(nproc)) {
      for (int r : ranks) who += (who.empty() ? "rank " : ", ") + std::to_string(r);
      who += ": ";
    }
    std::fprintf(stderr, "%s%s\n", who.c_str(), line.c_str());
  }
  std::error_code ec;
  std::filesystem::remove_all(folder, ec);
}

}  // namespace

int launch_local_ranks(int nproc, const std::vector<std::string>& args) {
  for (const char* var : {"RANK", "WORLD_SIZE"})
    if (std::getenv(var))
      throw InputError(std::string("--nproc: this process is already a rank (") + var +
                       " is set); launch with either --nproc or torchrun/srun, not both");
  const int port = free_port();
  std::string errors_folder = (std::filesystem::temp_directory_path() / "ventral-ranks-XXXXXX").string();
  if (!::mkdtemp(errors_folder.data()))
    throw InputError("--nproc: cannot create a folder under " + std::filesystem::temp_directory_path().string() +
                     " for the ranks' messages: " + std::strerror(errno));
  std::vector<std::string> argv_strings{"ventral"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  g_forward = 0, g_received = 0;
  const pid_t launcher = getpid();
  auto old_int = std::signal(SIGINT, on_launcher_signal);
  auto old_term = std::signal(SIGTERM, on_launcher_signal);
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = fork();
    if (pid < 0) {
      const std::string why = std::strerror(errno);
      for (pid_t p : pids) kill(p, SIGKILL), waitpid(p, nullptr, 0);
      std::signal(SIGINT, old_int);
      std::signal(SIGTERM, old_term);
      report_rank_errors(errors_folder, nproc);
      throw InputError("--nproc: cannot start a process: " + why);
    }
    if (pid == 0) {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      // A rank never outlives its launcher (killed with -9, say): it gets SIGTERM, saves and stops.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != launcher) _exit(143);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv(kRankErrorFileVariable, (errors_folder + "/rank." + std::to_string(r)).c_str(), 1);
      unsetenv("SLURM_PROCID");
      unsetenv("SLURM_NTASKS");
      execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "error: --nproc: cannot run /proc/self/exe: %s\n", std::strerror(errno));
      _exit(127);
    }
    pids.push_back(pid);
  }

  // A rank that stops (train.stop_after_steps, a signal) stops with the others at the same
  // step; one that fails leaves them blocked on it until their collectives fail. Either way the
  // others get 10 s to exit on their own, then SIGTERM, then SIGKILL 30 s later.
  using Clock = std::chrono::steady_clock;
  int first_failure = 0;
  size_t running = pids.size();
  std::vector<bool> done(pids.size(), false);
  Clock::time_point term_at{}, kill_at{};
  std::sig_atomic_t forwarded = 0;
  while (running > 0) {
    if (g_received != forwarded) {  // every signal to the launcher goes to every rank
      forwarded = g_received;
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) kill(pids[i], g_forward);
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (pids[i] != pid) continue;
        done[i] = true;
        --running;
        const int code = status_code(status);
        if (code != 0 && first_failure == 0) {
          first_failure = code;
          term_at = Clock::now() + std::chrono::seconds(10);
        }
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    const auto now = Clock::now();
    if (term_at != Clock::time_point{} && now > term_at) {
      std::fprintf(stderr, "train: a rank exited with status %d; stopping the %zu still running\n", first_failure, running);
      for (size_t j = 0; j < pids.size(); ++j)
        if (!done[j]) kill(pids[j], SIGTERM);
      term_at = {};
      kill_at = now + std::chrono::seconds(30);
    }
    if (kill_at != Clock::time_point{} && now > kill_at) {
      for (size_t j = 0; j < pids.size(); ++j)
        if (!done[j]) kill(pids[j], SIGKILL);
      kill_at = {};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  report_rank_errors(errors_folder, nproc);
  return first_failure;
}

}  // namespace ventral::cli
