// The profiler's device clock on CUDA (core/profiler.h): each profiled op is bracketed by two
// CUDA events recorded in the backend's stream, and its device time is the time between them.
// Plain C++ can include this header (backends/backend.cpp registers the timer at start-up).
#pragma once

namespace wavspa::cuda {

// Registers the event timer with core's profiler (idempotent; makes no CUDA call, so it is
// safe in a static initialiser of a process that never uses a GPU).
void register_profiler_timer();

}  // namespace wavspa::cuda
