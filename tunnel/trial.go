package tunnel

import (
	"fmt"
	"time"
)

// A trial judges a datagram carrier (WebTransport) before the call relies
// on it: for trialFor the media goes on it and on a carrier of the other
// kind, and the server sends the other device's media on both (Select with
// all), so nothing is lost while the trial runs. A censor that throttles
// UDP flows (stun-dpi: 4 KiB/s each, beyond a burst) passes datagrams up
// to its rate and drops the rest, which the redundancy cannot repair, as
// it adds to the rate; a path that loses at random (loss-10,
// burst-loss-20) still delivers most of them, and there datagrams beat
// TCP, whose retransmissions stall the audio behind each loss. So the
// candidate is kept if it carried trialKeep of the packets in the trial's
// last trialJudge, and left for badFor otherwise.
//
// A call trials at its start (the first carrier to join is WebTransport,
// with a WebSocket as the spare) and before moving up to WebTransport
// later. Only the downstream is judged: each device judges the path from
// the server to itself, and a censor that throttles one direction of a
// flow only is not seen by the device that sends into it.
type trial struct {
	cand, other *carrier // the datagram carrier on trial, and the one beside it
	start       time.Time
	arrivals    []trialArrival
	silent      time.Duration // a doubt: the active candidate had been silent this long
	lossy       string        // the active candidate was put on trial for this loss (ReportLoss)
}

// trialArrival is one copy of a packet that came during a trial.
type trialArrival struct {
	at    time.Time
	cand  bool // it came on the candidate
	first bool // no copy had come before it
}

// Trials: how long one lasts, the last part of it that is judged, the
// share of the packets the candidate must carry there, and the fewest
// packets that make a verdict (at 100 ms a packet, the most the sender
// bundles).
const (
	trialFor        = 2 * time.Second
	trialJudge      = time.Second
	trialKeep       = 0.5
	trialMinPackets = 8
	// trialCopies is how many packets are remembered to drop their second
	// copies: the two carriers' delays may differ by this many.
	trialCopies = 64
	// dedupAfter is how long second copies may still come after a trial.
	dedupAfter = time.Second
)

// copySeen is a packet that came, for telling its second copy.
type copySeen struct {
	tag Tag
	at  time.Time
}

// SetConstrained tells the Link whether the path lately had no room to
// spare for the media (the sender slowed down for a queue): then it tries
// no carrier, as a trial doubles the media, and a trial that runs ends
// without a verdict; and a silent datagram carrier is given longer before
// it is taken for frozen (slowDatagramFreeze). A Session calls it as it
// sends.
func (l *Link) SetConstrained(c bool) {
	l.mu.Lock()
	l.constrained = c
	l.mu.Unlock()
}

// HoldTrials keeps the Link from trying a better kind of carrier while
// hold is set. A Session holds its trials until its sender has measured
// the path (audio.Sender.Measured): a trial doubles the media, and on a
// path without room for it (rate-32k) the copies that went into a TCP
// flow in the second before the first report kept that flow sending for
// 15 s, beside the media. A trial for loss (ReportLoss) or of a silent
// carrier (doubt) is not held.
func (l *Link) HoldTrials(hold bool) {
	l.mu.Lock()
	l.holdTrials = hold
	l.mu.Unlock()
}

// InTrial says whether a trial runs: the media goes on two carriers.
func (l *Link) InTrial() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trial != nil
}

// datagrams says whether a carrier kind loses what the network drops
// rather than retransmitting it.
func datagrams(kind string) bool { return kind == "webtransport" }

// wantTrial says whether the Link should judge one of a and s by a trial
// now: they are of different kinds, the better-ranked one carries
// datagrams and has not passed a trial since it was last left, and, when
// it is the spare, the Link could move up to it. Called with l.mu held.
func (l *Link) wantTrial(now time.Time, a, s *carrier) bool {
	if a == nil || s == nil || a.Kind() == s.Kind() || now.Before(l.trialAfter) || l.constrained || l.holdTrials {
		return false
	}
	cand := a
	if l.kindRank(s.Kind()) < l.kindRank(a.Kind()) {
		cand = s
	}
	if !datagrams(cand.Kind()) || l.proven[cand.Kind()] || now.Before(l.bad[cand.Kind()]) {
		return false
	}
	return cand == a || l.mayMoveUp(now, s)
}

// mayMoveUp says whether the Link may move up to the spare s: the last
// switch is lossHold ago, s has been open a second and still hears the
// server. Called with l.mu held.
func (l *Link) mayMoveUp(now time.Time, s *carrier) bool {
	return now.After(l.bad[s.Kind()]) && l.spareReady(now, s) && now.Sub(s.opened) > time.Second
}

// startTrial starts a trial of whichever of a and s is better ranked.
// Called with l.mu held.
func (l *Link) startTrial(now time.Time, a, s *carrier) {
	cand, other := a, s
	if l.kindRank(s.Kind()) < l.kindRank(a.Kind()) {
		cand, other = s, a
	}
	l.begin(&trial{cand: cand, other: other, start: now}, a, false)
	l.log.Debug("tunnel carrier trial", "candidate", cand.name, "beside", other.name)
}

// begin starts trial t: second copies of the media are dropped from now
// on, and a Select with all, sent on sel, asks the server to send the
// media on every carrier (and, with replay, the last half second again on
// sel). Called with l.mu held.
func (l *Link) begin(t *trial, sel *carrier, replay bool) {
	l.trial = t
	l.dmu.Lock()
	l.dedup = true
	l.dmu.Unlock()
	sel.out.Offer(AppendSelectAll(nil, replay))
}

// mayDoubt says whether the active carrier a, silent long enough to be
// taken for frozen, is rather doubted: it carries datagrams, the path has
// room for the media twice, and no trial of another carrier runs. Called
// with l.mu held.
func (l *Link) mayDoubt(a *carrier) bool {
	return datagrams(a.Kind()) && !l.constrained && (l.trial == nil || l.trial.cand == a)
}

// doubt puts the active datagram carrier a, silent for silent, on trial
// beside the spare s, instead of leaving it. Datagrams are not a TCP flow
// that a censor freezes for good: a burst of random loss silences them
// for a few hundred milliseconds too, and leaving them for a WebSocket on
// such a path trades a gap for TCP's stalls. The Select with all goes on
// the spare, since a may be gone, and asks for the last half second again
// there; from then on the media goes on both, so the doubt costs no more
// of a gap than a move, and the trial's verdict keeps a or leaves it as
// frozen. Called with l.mu held.
func (l *Link) doubt(now time.Time, a, s *carrier, silent time.Duration) {
	l.begin(&trial{cand: a, other: s, start: now, silent: silent}, s, true)
	l.log.Info("tunnel carrier doubted", "carrier", a.name, "silent", silent, "beside", s.name)
}

// endTrial forgets the trial, if any, and, with sel set, tells the server
// on sel to send the media there alone (promote sends its own Select);
// second copies are still dropped for dedupAfter. Called with l.mu held.
func (l *Link) endTrial(now time.Time, sel *carrier) {
	if l.trial == nil {
		return
	}
	l.trial = nil
	l.dmu.Lock()
	l.dedup, l.dedupUntil = false, now.Add(dedupAfter)
	l.dmu.Unlock()
	if sel != nil {
		sel.out.Offer(AppendSelect(nil, false))
	}
}

// judgeTrial ends the trial: it keeps the candidate (moving up to it if
// it is the spare) or leaves it, or, if too little media came to tell,
// tries again after lossHold. Called with l.mu held.
func (l *Link) judgeTrial(now time.Time) {
	t := l.trial
	a, s := l.active, l.spare
	if (t.cand != a || t.other != s) && (t.cand != s || t.other != a) {
		// A carrier of the trial is gone (promote ends a trial, but one
		// may fail as a spare).
		l.endTrial(now, a)
		return
	}
	share, n := t.share(now)
	if t.silent > 0 {
		l.judgeDoubt(now, t, share, n)
		return
	}
	switch {
	case l.constrained:
		// The path had no room for the media twice: the trial's losses
		// may be its own.
		l.trialAfter = now.Add(lossHold)
		l.log.Info("tunnel carrier trial ended: the path is slow", "candidate", t.cand.name)
	case n < trialMinPackets:
		l.trialAfter = now.Add(lossHold)
		l.log.Debug("tunnel carrier trial: too little media to tell", "candidate", t.cand.name, "packets", n)
	case share >= trialKeep:
		l.proven[t.cand.Kind()] = true
		l.log.Info("tunnel carrier passed its trial", "carrier", t.cand.name, "share", share)
		if t.lossy != "" {
			l.trialAfter = now.Add(lossHold) // a path that keeps losing would keep it on trial
		}
		if t.cand == s {
			l.promote(CauseUp, fmt.Sprintf("up to %s: it carried %.0f%% of the media in a trial, and datagrams carry media without TCP's head-of-line blocking", s.name, 100*share), false)
			return
		}
	default:
		l.leave(t.cand.Kind(), now)
		why := fmt.Sprintf("%s lossy: it carried %.0f%% of the media in a trial beside %s", t.cand.name, 100*share, t.other.name)
		if t.lossy != "" {
			why = fmt.Sprintf("%s lossy: %s, and it carried %.0f%% of the media in a trial beside %s", t.cand.name, t.lossy, 100*share, t.other.name)
		}
		if t.cand == a {
			l.promote(CauseLossy, why, false)
			return
		}
		l.log.Info("tunnel carrier failed its trial", "reason", why)
	}
	l.endTrial(now, a)
}

// judgeDoubt ends a doubt (see doubt): the active carrier is kept if it
// carried trialKeep of the media of the trial's last trialJudge, or if
// too little media came to tell but it heard the server since the doubt
// began; otherwise it is left as frozen, and its kind for badFor. Called
// with l.mu held.
func (l *Link) judgeDoubt(now time.Time, t *trial, share float64, n int) {
	a, s := t.cand, t.other
	heard := time.Unix(0, a.heard.Load()).After(t.start)
	if share >= trialKeep || n < trialMinPackets && heard {
		l.log.Info("tunnel carrier was slow, not frozen", "carrier", a.name, "share", share, "packets", n)
		l.endTrial(now, a)
		return
	}
	l.watchFrozen(a) // before promote, which would close it
	l.leave(a.Kind(), now)
	l.promote(CauseFrozen, fmt.Sprintf("%s frozen: nothing from the server for %v, then %.0f%% of the media in %v beside %s",
		a.name, t.silent.Round(time.Millisecond), 100*share, now.Sub(t.start).Round(100*time.Millisecond), s.name), true)
}

// leave marks kind as not to be used for badFor. Called with l.mu held.
func (l *Link) leave(kind string, now time.Time) {
	l.bad[kind] = now.Add(badFor)
	delete(l.proven, kind)
}

// share returns the share of the packets of the last trialJudge that came
// on the candidate, and how many packets came.
func (t *trial) share(now time.Time) (float64, int) {
	var first, cand int
	for _, a := range t.arrivals {
		if now.Sub(a.at) > trialJudge {
			continue
		}
		if a.first {
			first++
		}
		if a.cand {
			cand++
		}
	}
	if first == 0 {
		return 0, 0
	}
	return min(float64(cand)/float64(first), 1), first
}

// firstCopy notes that media payload p came on c and reports whether it
// is its first copy (during a trial, and for dedupAfter after it, the
// server sends the other device's media on two carriers), and whether c
// is aside: not the active carrier.
func (l *Link) firstCopy(c *carrier, p []byte) (first, aside bool) {
	now := time.Now()
	first = true
	l.dmu.Lock()
	if l.dedup || !now.After(l.dedupUntil) {
		tag := TagOf(p)
		for _, x := range l.copies {
			if x.tag == tag && now.Sub(x.at) < dedupAfter {
				first = false
				break
			}
		}
		if first {
			l.copies[l.nextCopy] = copySeen{tag, now}
			l.nextCopy = (l.nextCopy + 1) % trialCopies
		}
	}
	l.dmu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.trial; t != nil && (c == t.cand || c == t.other) {
		t.arrivals = append(t.arrivals, trialArrival{at: now, cand: c == t.cand, first: first})
	}
	return first, c != l.active
}
