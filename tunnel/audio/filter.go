package audio

import "time"

// minFilter keeps the minimum of a measurement (a one-way delay, a round
// trip) per filterBucket over filterBuckets buckets, to tell how far the
// recent minimum (of the last filterRecent buckets, which filters out
// jitter) has risen above the minimum of the whole window (the path's
// base delay): that rise is the queueing delay.
type minFilter struct {
	min [filterBuckets]time.Duration
	idx [filterBuckets]int64 // bucket number + 1; 0 for none
}

const (
	filterBucket  = 250 * time.Millisecond
	filterBuckets = 120 // 30 s
	filterRecent  = 4   // 0.75 to 1 s
)

// add records v measured at t (t ≥ 0, on the owner's clock).
func (f *minFilter) add(t, v time.Duration) {
	if t < 0 {
		return
	}
	b := int64(t/filterBucket) + 1
	i := b % filterBuckets
	if f.idx[i] != b {
		f.idx[i], f.min[i] = b, v
		return
	}
	f.min[i] = min(f.min[i], v)
}

// rise is the recent minimum above the window's minimum at t; ok is false
// when nothing was measured recently.
func (f *minFilter) rise(t time.Duration) (r time.Duration, ok bool) {
	b := int64(t/filterBucket) + 1
	var base, recent time.Duration
	haveBase := false
	for i, idx := range f.idx {
		if idx == 0 || idx <= b-filterBuckets {
			continue
		}
		if !haveBase || f.min[i] < base {
			base, haveBase = f.min[i], true
		}
		if idx > b-filterRecent && (!ok || f.min[i] < recent) {
			recent, ok = f.min[i], true
		}
	}
	return recent - base, ok
}

// base is the window's minimum at t; ok is false when it is empty.
func (f *minFilter) base(t time.Duration) (m time.Duration, ok bool) {
	b := int64(t/filterBucket) + 1
	for i, idx := range f.idx {
		if idx != 0 && idx > b-filterBuckets && (!ok || f.min[i] < m) {
			m, ok = f.min[i], true
		}
	}
	return m, ok
}
