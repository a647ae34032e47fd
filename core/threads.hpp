#pragma once
#include <cstdint>
#include <optional>

namespace ventral {

/// Number of cores available to this process.
int64_t available_cores();
/// Sets torch's intra-op thread count: `threads` or, for nullopt ("auto"), all cores.
/// Returns the count in force. (torch defaults to one thread on these machines.)
int64_t configure_threads(std::optional<int64_t> threads);

}  // namespace ventral
