package sampler

import "github.com/remask/remask/internal/step"

// scheduleRatio is the mask ratio of the schedule at index i (0-based).
//
// Linear: ratio(i) = start - i/(N-1)*(start-end) for N > 1, end for N <= 1.
// Custom: masking_ratios[i] when i < len, else end_ratio.
//
// The remask performed after iteration it uses scheduleRatio(it+1): the
// reference's indexing (sampler-spec 4.6), kept so that schedules mean the
// same thing in both. ratio(0) is therefore never applied.
func (o *Options) scheduleRatio(i int) float64 {
	return step.ForkRatio(o.StartRatio, o.EndRatio, o.MaskingRatios, i, o.Iterations)
}
