// The precise timer the load generator schedules open-loop sends with (precise-timer.cc).
#pragma once
#include <napi.h>

// Adds the PreciseTimer class to `exports` where the platform has timerfd (Linux); elsewhere adds nothing.
void RegisterPreciseTimer(Napi::Env env, Napi::Object exports);
