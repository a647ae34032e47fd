#pragma once
/// `ventral train --nproc N`: a single-node launcher, so no Python (torchrun) is needed.
#include <string>
#include <vector>

namespace ventral::cli {

/// Runs this binary `nproc` times with `args` (the command line without --nproc), as ranks
/// 0..nproc-1 of one job on this machine: RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE set,
/// MASTER_ADDR=127.0.0.1 and MASTER_PORT a free port. SIGINT/SIGTERM are forwarded to every rank.
/// When a rank exits non-zero the others get 10 s to exit by themselves (a planned stop ends
/// every rank at the same step; a failure breaks their collectives), then SIGTERM, then SIGKILL.
/// Returns the exit status of the first rank that failed (its signal as 128+N), else 0.
/// A failing rank's error line goes to the file this variable names (set by the launcher), and
/// the launcher prints each distinct line once, naming the ranks when not all of them said it.
int launch_local_ranks(int nproc, const std::vector<std::string>& args);

inline constexpr const char* kRankErrorFileVariable = "VENTRAL_RANK_ERROR_FILE";

}  // namespace ventral::cli
