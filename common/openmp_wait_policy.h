// How the OpenMP threads of Pagoda's computing processes (pagoda-worker, and `pagoda` for its
// in-process engine and the workers `pagoda serve` starts) wait between parallel regions.
//
// libgomp's default is to spin for a while (GOMP_SPINCOUNT 300000) after every parallel region
// before sleeping. Between two engine steps the worker's threads then spin while the gRPC,
// engine and HTTP threads that carry the step's result and the next plan need the same cores:
// measured with benchmarks/serving_profile.sh (docs/performance.md), one stream's TPOT was 4–6x
// longer than with passive waiting. Passive waiting (sleep at once) has the opposite cost: a
// decode step is ~150 parallel regions, and waking the threads for each one made the step 3x
// slower than spinning on an idle host. A short spin (GOMP_SPINCOUNT 3000: microseconds) keeps
// the threads awake through a step's back-to-back regions and asleep between steps: on an idle
// host the step ran as fast as with libgomp's default, and one serving stream was 5 % faster
// than with passive waiting (16 streams: 27 % faster in one round, equal in the other). So these
// processes run with GOMP_SPINCOUNT=3000 unless the user says otherwise with OMP_WAIT_POLICY or
// GOMP_SPINCOUNT.
//
// libgomp reads those variables once, when it is loaded (before main), so the default can only
// be changed by setting it and executing the program again:
//
//   int main(int argc, char** argv) {
//     pagoda::ExecWithShortOpenMpSpinUnlessSet(argv);  // returns with the policy in force
//     ...
#pragma once

namespace pagoda {

/// The spin count set when the user set neither variable.
inline constexpr char kDefaultOpenMpSpinCount[] = "3000";

/// Returns at once when OMP_WAIT_POLICY or GOMP_SPINCOUNT is set. Otherwise sets
/// GOMP_SPINCOUNT=kDefaultOpenMpSpinCount and executes /proc/self/exe again with the same
/// arguments (the same process id); if that fails it returns, and OpenMP keeps its default.
void ExecWithShortOpenMpSpinUnlessSet(char** argv);

}  // namespace pagoda
