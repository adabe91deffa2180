// Summary statistics of a sample, computed as numpy computes them (vLLM's benchmark reports use
// numpy): the mean, np.std (population standard deviation) and np.percentile's default linear
// interpolation between the closest ranks. Empty samples summarize to zeros, as vLLM reports
// np.mean(x or 0).
//
//   Summary s = Summarize({1, 2, 3, 4});   // mean 2.5, median 2.5, p90 3.7, p99 3.97
#pragma once

#include <vector>

namespace pagoda {

/// np.percentile(values, p) for p in [0, 100]; 0 when `values` is empty.
double Percentile(std::vector<double> values, double p);

struct Summary {
  double mean = 0;
  double median = 0;
  double std = 0;  // population (np.std)
  double p90 = 0;
  double p99 = 0;
};

Summary Summarize(const std::vector<double>& values);

}  // namespace pagoda
