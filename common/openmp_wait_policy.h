// How the OpenMP threads of Pagoda's computing processes (pagoda-worker, and `pagoda` for its
// in-process engine and the workers `pagoda serve` starts) wait between parallel regions.
//
// libgomp's default is to spin for a while (GOMP_SPINCOUNT 300000) after every parallel region
// before sleeping. Between two engine steps the worker's threads then spin while the gRPC,
// engine and HTTP threads that carry the step's result and the next plan need the same cores:
// measured with benchmarks/serving_profile.sh (docs/performance.md), one stream's TPOT was 4–6x
// longer than with passive waiting, most of the worker's CPU time was libgomp spinning, and 16
// streams served 10–40 % fewer tokens per second. So these processes wait passively unless the
// user says otherwise with OMP_WAIT_POLICY or GOMP_SPINCOUNT.
//
// libgomp reads those variables once, when it is loaded (before main), so the default can only
// be changed by setting it and executing the program again:
//
//   int main(int argc, char** argv) {
//     pagoda::ExecWithPassiveOpenMpWaitUnlessSet(argv);  // returns with the policy in force
//     ...
#pragma once

namespace pagoda {

/// Returns at once when OMP_WAIT_POLICY or GOMP_SPINCOUNT is set. Otherwise sets
/// OMP_WAIT_POLICY=PASSIVE and executes /proc/self/exe again with the same arguments (the same
/// process id); if that fails it returns, and OpenMP keeps its default.
void ExecWithPassiveOpenMpWaitUnlessSet(char** argv);

}  // namespace pagoda
