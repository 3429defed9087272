// Voice calls in the browser: the browser's own WebRTC stack (Opus audio)
// set up through Parley's end-to-end encrypted call signals (api.ts,
// CallSignal), the same protocol as the Go CLI (package call): the caller
// sends an offer and then trickles its ICE candidates; the callee answers
// and trickles its own; either side hangs up; a callee may decline or be
// busy. Candidates that arrive before their description are queued.
//
// One call at a time. A second offer while a call rings or runs is answered
// "busy". What a call came to is written into the conversation's history
// (parley.recordCall). The TURN relay is parleyd's own, with a fresh
// credential per call; "relay only" (a setting) keeps each side's IP
// address from the other.
//
// A call may instead carry its audio through the server's tunnel (tier 2,
// for networks that block WebRTC; the "tunnel" setting for calls we make):
// the offer then has no SDP but our share of the tunnel secret
// (tunnel_key), the answer the callee's share, and each side runs
// parley.openTunnel with the codec of tunnel.ts; no RTCPeerConnection.
// Such a call is active once the other device is in the server's room and
// its audio arrives.

import type { CallOutcome, CallSignal, Parley, TunnelCall, TunnelStats } from "./api";
import { errorKind, errorText } from "./format";
import { TunnelAudio, type TunnelAudioStats } from "./tunnel";

/** How long an outgoing call rings before it gives up, as the CLI does. */
const ringTimeout = 45_000;
/** After the answer, how long the media path may take to come up. */
const connectTimeout = 20_000;
/** An offer older than this (it waited on the server while this device was
 * offline) is a missed call, not a ring. */
const staleOffer = 60_000;
/** How often the call's statistics are read for the quality indicator. */
const statsEvery = 1_000;
/** After a connected call's media path fails, how long to wait for the
 * peer's hang-up (which travels through the server, the slower way) before
 * calling it a failure. */
const hangupGrace = 3_000;
/** What calls ask of the microphone. */
const microphone: MediaStreamConstraints = { audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } };
/** Bounds on what a misbehaving peer can make us queue. */
const maxQueuedCandidates = 64;

export type CallPhase =
  | "calling" // outgoing, ringing at the peer
  | "ringing" // incoming, waiting for this user
  | "connecting" // answered; the media path is coming up
  | "active" // talking
  | "ended";

export type Quality = "good" | "fair" | "poor" | "unknown";

/** What the call screen shows. */
export interface CallView {
  id: string;
  peer: string;
  outgoing: boolean;
  phase: CallPhase;
  startedAt: number; // Date.now() when dialled or rung
  connectedAt: number; // when the media path came up (0 before)
  muted: boolean;
  quality: Quality;
  /** "direct", "relay (udp|tcp|tls)" or "server tunnel (WebTransport|WebSocket)", once known. */
  path: string;
  /** After the call: what it came to, for people. */
  summary: string;
  outcome?: CallOutcome;
}

/** The numbers behind the quality indicator (and the end-to-end tests). */
export interface CallStats {
  id: string;
  phase: CallPhase;
  path: string;
  setupMs: number; // dial (or accept) to the first audio packet received, 0 before
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  jitterMs: number;
  rttMs: number;
  audioEnergy: number; // the inbound track's totalAudioEnergy (tunnel: of the decoded audio played)
  audioLevel: number; // its last audioLevel, 0..1
  bytesReceived: number;
  /** Tunnel calls: what the Go side (jitter buffer, sender, carriers) and
   * the codec side did. packetsReceived counts the frames received,
   * packetsLost the slots concealed; jitterMs is not measured (the jitter
   * buffer's delay is in tunnel). */
  tunnel?: TunnelStats;
  tunnelAudio?: TunnelAudioStats;
}

export interface CallSettings {
  /** Media only through the TURN relay: the peer never learns this device's IP address. */
  relayOnly(): boolean;
  /** Calls we make carry their audio through the server's tunnel (tier 2), not WebRTC. */
  tunnel(): boolean;
}

type Listener = (v: CallView | null) => void;

interface Session {
  view: CallView;
  pc: RTCPeerConnection | null;
  local: MediaStream | null;
  audio: HTMLAudioElement | null;
  offer?: CallSignal; // incoming: the caller's offer, with its device
  remote: string; // the device that answered or called ("" while ringing out)
  described: boolean; // our description has been sent
  haveRemote: boolean; // the remote description is set
  localICE: CallSignal[]; // found before our description went out
  remoteICE: CallSignal[]; // arrived before the remote description
  timers: number[];
  ticker: number;
  firstAudio: number; // when the first audio packet arrived
  dialedAt: number; // when set-up started (dial, or accept)
  last?: { lost: number; received: number; at: number }; // for loss per interval
  closed: boolean;
  // Tunnel calls only:
  share?: string; // our share of the tunnel secret: set, the call goes through the tunnel
  tunnel: TunnelCall | null;
  tunnelAudio: TunnelAudio | null;
  peerIn: boolean; // the other device is in the server's room
  leftTimer: number; // it left: end the call unless it comes back
  switches: number; // moves between carriers logged so far
}

/** Calls is the calling side of one Parley client (one call at a time). */
export class Calls {
  private cur: Session | null = null;
  private shown: CallView | null = null;
  private listeners = new Set<Listener>();
  private done = new Set<string>(); // ended call ids: their late signals are ignored
  private sending: Promise<unknown> = Promise.resolve();
  private ring = new Ringer();

  constructor(
    private parley: Parley,
    private settings: CallSettings,
  ) {
    parley.onEvent((e) => {
      if (e.type === "call") this.signal(e.peer, e.signal);
    });
  }

  /** The call on screen (an ended one stays a few seconds), or null. */
  view(): CallView | null {
    return this.shown;
  }

  subscribe(cb: Listener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** True while a call rings or runs. */
  busy(): boolean {
    return this.cur !== null;
  }

  /** Calls peer. Errors (no microphone, offline, no relay) end the call
   * with a reason on the call screen and in the history. */
  async dial(peer: string): Promise<void> {
    if (this.cur) throw new Error("already in a call");
    const s = this.newSession(this.parley.newCallId(), peer, true, "calling");
    if (this.settings.tunnel()) return this.dialTunnel(s);
    try {
      await this.prepare(s);
      if (s.closed) return;
      const offer = await s.pc!.createOffer();
      await s.pc!.setLocalDescription(offer);
      if (s.closed) return;
      // Before the offer leaves: an answer may come back at once.
      s.timers.push(window.setTimeout(() => s.view.phase === "calling" && this.end(s, "no_answer", "", true), ringTimeout));
      await this.describe(s, "offer", s.pc!.localDescription!.sdp);
    } catch (e) {
      this.end(s, "failed", setupError(e), s.described);
    }
  }

  /** Takes the ringing call. */
  async accept(): Promise<void> {
    const s = this.cur;
    if (!s || s.view.phase !== "ringing" || !s.offer) return;
    this.ring.stop();
    this.clearTimers(s); // the missed-call timer
    s.dialedAt = Date.now();
    this.update(s, { phase: "connecting" });
    if (!s.offer.sdp) return this.acceptTunnel(s, s.offer.tunnel_key!);
    try {
      await this.prepare(s);
      if (s.closed) return;
      await s.pc!.setRemoteDescription({ type: "offer", sdp: s.offer.sdp! });
      s.haveRemote = true;
      await this.flushRemoteICE(s);
      const answer = await s.pc!.createAnswer();
      await s.pc!.setLocalDescription(answer);
      if (s.closed) return;
      await this.describe(s, "answer", s.pc!.localDescription!.sdp);
      this.startConnectTimer(s);
    } catch (e) {
      this.end(s, "failed", setupError(e), true);
    }
  }

  /** Refuses the ringing call. */
  decline(): void {
    const s = this.cur;
    if (!s || s.view.phase !== "ringing") return;
    this.send(s.view.peer, { id: s.view.id, kind: "decline" });
    this.end(s, "declined", "", false);
  }

  /** Ends the call (or stops calling). */
  hangup(): void {
    const s = this.cur;
    if (!s) {
      this.dismiss();
      return;
    }
    if (s.view.phase === "ringing") return this.decline();
    if (s.view.phase === "calling") return this.end(s, "cancelled", "", true);
    if (s.view.phase === "connecting") return this.end(s, "cancelled", "", true);
    this.end(s, "completed", "", true);
  }

  setMuted(muted: boolean): void {
    const s = this.cur;
    if (!s) return;
    s.local?.getAudioTracks().forEach((t) => (t.enabled = !muted));
    s.tunnelAudio?.setMuted(muted);
    this.update(s, { muted });
  }

  /** Clears an ended call from the screen. */
  dismiss(): void {
    if (this.cur || !this.shown) return;
    this.shown = null;
    this.notify();
  }

  /** Resolves once every call signal handed over so far has been sent (or
   * failed): a page that closes right after a hang-up should wait for it. */
  settled(): Promise<void> {
    return this.sending.then(() => {});
  }

  /** Whether the ring is sounding: "running" while an incoming call rings
   * and the page may play audio (diagnostics, and the tests). */
  ringState(): string {
    return this.ring.state();
  }

  /** The current call's statistics, or null when there is none. */
  async stats(): Promise<CallStats | null> {
    const s = this.cur;
    if (s?.tunnel) return tunnelStats(s);
    if (!s?.pc) return null;
    return readStats(s, await s.pc.getStats());
  }

  // --- signals from the peer ---

  private signal(peer: string, sig: CallSignal): void {
    if (this.done.has(sig.id)) return;
    const s = this.cur;
    if (sig.kind === "offer") {
      if (s && s.view.id === sig.id) return; // a repeat
      if (s) {
        // Busy: tell the caller, and note the call we could not take.
        this.send(peer, { id: sig.id, kind: "busy" });
        this.finished(sig.id);
        this.record(peer, { id: sig.id, outgoing: false, outcome: "busy", at: sig.sent_at });
        return;
      }
      if (!sig.sdp && !sig.tunnel_key) return;
      if (sig.sent_at && Date.now() - sig.sent_at > staleOffer) {
        this.finished(sig.id);
        this.record(peer, { id: sig.id, outgoing: false, outcome: "missed", at: sig.sent_at });
        return;
      }
      const n = this.newSession(sig.id, peer, false, "ringing");
      n.offer = sig;
      n.remote = sig.from ?? "";
      n.timers.push(window.setTimeout(() => n.view.phase === "ringing" && this.end(n, "missed", "", false), ringTimeout + 15_000));
      this.ring.start();
      return;
    }
    if (!s || s.view.id !== sig.id || s.view.peer !== peer) return;
    const ringingOut = s.view.outgoing && !s.haveRemote;
    if (ringingOut) {
      // Any device of the callee may answer, decline or be busy.
      switch (sig.kind) {
        case "answer":
          void this.answered(s, sig);
          return;
        case "ice":
          return this.queueICE(s, sig);
        case "busy":
          return this.end(s, "busy", "", false);
        case "decline":
          return this.end(s, "declined", "", false);
        case "hangup": // a device of the callee could not take the call
          return this.end(s, "failed", `${peer}'s device could not take the call`, false);
      }
      return;
    }
    if (s.remote && sig.from && sig.from !== s.remote) return; // another device of the peer
    switch (sig.kind) {
      case "ice":
        if (!s.haveRemote) return this.queueICE(s, sig);
        void this.addCandidate(s, sig);
        return;
      case "hangup":
        if (s.view.phase === "ringing") return this.end(s, "missed", "", false);
        if (s.view.phase === "connecting") return this.end(s, "failed", `${peer} gave up before the call connected`, false);
        return this.end(s, "completed", "", false);
    }
  }

  private async answered(s: Session, sig: CallSignal): Promise<void> {
    s.haveRemote = true; // from now on, only this device's signals count
    s.remote = sig.from ?? "";
    this.update(s, { phase: "connecting" });
    this.clearTimers(s);
    if (s.share) {
      if (!sig.tunnel_key) return this.end(s, "failed", "the answer has no tunnel key", true);
      this.startConnectTimer(s);
      return this.openTunnel(s, sig.tunnel_key);
    }
    try {
      await s.pc!.setRemoteDescription({ type: "answer", sdp: sig.sdp! });
      await this.flushRemoteICE(s);
      this.startConnectTimer(s);
    } catch (e) {
      this.end(s, "failed", `the answer could not be used: ${errorText(e)}`, true);
    }
  }

  private queueICE(s: Session, sig: CallSignal): void {
    if (s.remoteICE.length < maxQueuedCandidates) s.remoteICE.push(sig);
  }

  private async flushRemoteICE(s: Session): Promise<void> {
    const queued = s.remoteICE;
    s.remoteICE = [];
    for (const q of queued) {
      if (!s.remote || !q.from || q.from === s.remote) await this.addCandidate(s, q);
    }
  }

  private async addCandidate(s: Session, sig: CallSignal): Promise<void> {
    if (!s.pc || s.closed) return;
    try {
      await s.pc.addIceCandidate(JSON.parse(sig.candidate ?? "") as RTCIceCandidateInit);
    } catch (e) {
      console.debug("parley: ICE candidate refused:", e);
    }
  }

  // --- setting up ---

  private newSession(id: string, peer: string, outgoing: boolean, phase: CallPhase): Session {
    const now = Date.now();
    const s: Session = {
      view: { id, peer, outgoing, phase, startedAt: now, connectedAt: 0, muted: false, quality: "unknown", path: "", summary: "" },
      pc: null,
      tunnel: null,
      tunnelAudio: null,
      peerIn: false,
      leftTimer: 0,
      switches: 0,
      local: null,
      audio: null,
      remote: "",
      described: false,
      haveRemote: false,
      localICE: [],
      remoteICE: [],
      timers: [],
      ticker: 0,
      firstAudio: 0,
      dialedAt: now,
      closed: false,
    };
    this.cur = s;
    this.shown = { ...s.view };
    this.notify();
    return s;
  }

  /** Gets the microphone, the relay's credential and the peer connection. */
  private async prepare(s: Session): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new SetupError("calls need a secure connection: open Parley over https (or on localhost)");
    }
    const relayOnly = this.settings.relayOnly();
    const [local, servers] = await Promise.all([
      navigator.mediaDevices.getUserMedia(microphone),
      this.parley.turnServers().catch((e) => {
        if (errorKind(e) === "unavailable") throw new SetupError("not connected to the server");
        throw e;
      }),
    ]);
    s.local = local;
    if (s.closed) return this.release(s);
    if (relayOnly && servers.length === 0) {
      throw new SetupError("“relay only” is on, but this server runs no TURN relay");
    }
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: relayOnly ? "relay" : "all" });
    s.pc = pc;
    for (const t of local.getAudioTracks()) {
      t.enabled = !s.view.muted;
      pc.addTrack(t, local);
    }
    pc.onicecandidate = (e) => {
      if (!e.candidate || s.closed) return;
      const sig: CallSignal = { id: s.view.id, kind: "ice", candidate: JSON.stringify(e.candidate.toJSON()) };
      if (!s.described) s.localICE.push(sig);
      else this.send(s.view.peer, sig);
    };
    pc.ontrack = (e) => {
      const audio = new Audio();
      audio.autoplay = true;
      audio.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      s.audio = audio;
      void audio.play().catch(() => {});
      const first = () => {
        if (!s.firstAudio) s.firstAudio = Date.now();
      };
      if (!e.track.muted) first();
      e.track.addEventListener("unmute", first, { once: true });
    };
    pc.onconnectionstatechange = () => {
      if (s.closed) return;
      switch (pc.connectionState) {
        case "connected":
          if (!s.view.connectedAt) {
            this.clearTimers(s);
            this.update(s, { phase: "active", connectedAt: Date.now() });
            this.startStats(s);
          }
          break;
        case "failed":
          // The other side's hang-up may come after its closing the
          // connection has reached us: give it a moment.
          if (s.view.connectedAt) {
            s.timers.push(window.setTimeout(() => this.end(s, "failed", failure(s, relayOnly, true), true), hangupGrace));
            break;
          }
          this.end(s, "failed", failure(s, relayOnly, servers.length > 0), true);
          break;
      }
    };
  }

  // --- the tunnel (tier 2) ---

  /** Calls through the tunnel: the offer carries our share, no SDP. */
  private async dialTunnel(s: Session): Promise<void> {
    s.share = this.parley.newTunnelKey();
    try {
      await this.prepareTunnel(s);
      if (s.closed) return;
      s.timers.push(window.setTimeout(() => s.view.phase === "calling" && this.end(s, "no_answer", "", true), ringTimeout));
      await this.describe(s, "offer");
    } catch (e) {
      this.end(s, "failed", setupError(e), s.described);
    }
  }

  /** Takes a tunnel-only offer: joins the room while the answer, with our
   * share, goes out. */
  private async acceptTunnel(s: Session, theirs: string): Promise<void> {
    s.share = this.parley.newTunnelKey();
    s.haveRemote = true;
    try {
      await this.prepareTunnel(s);
      if (s.closed) return;
      const opening = this.openTunnel(s, theirs);
      await this.describe(s, "answer");
      this.startConnectTimer(s);
      await opening;
    } catch (e) {
      this.end(s, "failed", setupError(e), true);
    }
  }

  /** Gets the microphone and the codec. */
  private async prepareTunnel(s: Session): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new SetupError("calls need a secure connection: open Parley over https (or on localhost)");
    }
    s.local = await navigator.mediaDevices.getUserMedia(microphone);
    if (s.closed) return this.release(s);
    s.tunnelAudio = await TunnelAudio.open(s.local);
    s.tunnelAudio.setMuted(s.view.muted);
    if (s.closed) return this.release(s);
  }

  /** Joins the server's room with both shares and starts the audio. */
  private async openTunnel(s: Session, theirs: string): Promise<void> {
    const audio = s.tunnelAudio!;
    try {
      const call = await this.parley.openTunnel(
        s.view.id,
        s.view.outgoing,
        s.share!,
        theirs,
        audio.handlers({
          peer: (present) => this.tunnelPeer(s, present),
          audio: () => {
            if (!s.firstAudio) s.firstAudio = Date.now();
            this.tunnelActive(s);
          },
        }),
      );
      if (s.closed) return call.close();
      s.tunnel = call;
      audio.attach(call);
      this.update(s, { path: tunnelPath(call.path()) });
    } catch (e) {
      this.end(s, "failed", `the server's call tunnel: ${errorText(e)}`, true);
    }
  }

  /** The other device came into the server's room, or left it. */
  private tunnelPeer(s: Session, present: boolean): void {
    if (s.closed) return;
    s.peerIn = present;
    window.clearTimeout(s.leftTimer);
    s.leftTimer = 0;
    if (present) return this.tunnelActive(s);
    // It hung up and the hang-up (which travels the slower way) is late,
    // or lost: as when a WebRTC connection fails, wait a moment for it.
    if (s.view.connectedAt) s.leftTimer = window.setTimeout(() => this.end(s, "completed", "", true), hangupGrace);
  }

  /** The call is active once the other device is in the room and its
   * audio arrives. */
  private tunnelActive(s: Session): void {
    if (s.closed || s.view.connectedAt || !s.peerIn || !s.firstAudio) return;
    this.clearTimers(s);
    this.update(s, { phase: "active", connectedAt: Date.now() });
    this.startStats(s);
  }

  /** Sends our description (and, for the tunnel, our share), then the
   * candidates found meanwhile. */
  private async describe(s: Session, kind: "offer" | "answer", sdp?: string): Promise<void> {
    await this.send(s.view.peer, { id: s.view.id, kind, sdp, tunnel_key: s.share });
    s.described = true;
    for (const sig of s.localICE) this.send(s.view.peer, sig);
    s.localICE = [];
  }

  private startConnectTimer(s: Session): void {
    if (s.view.connectedAt) return;
    s.timers.push(
      window.setTimeout(
        () =>
          !s.view.connectedAt &&
          this.end(
            s,
            "failed",
            s.share
              ? `no audio through the server's tunnel within ${connectTimeout / 1000} s`
              : `no media path within ${connectTimeout / 1000} s: ${failure(s, this.settings.relayOnly(), true)}`,
            true,
          ),
        connectTimeout,
      ),
    );
  }

  private startStats(s: Session): void {
    s.ticker = window.setInterval(async () => {
      if (s.closed || !(s.pc || s.tunnel)) return;
      try {
        const st = s.tunnel ? tunnelStats(s) : readStats(s, await s.pc!.getStats());
        if (st.tunnel) {
          s.tunnelAudio?.setBitrate(st.tunnel.bitrate);
          for (const sw of st.tunnel.switches.slice(s.switches)) {
            console.info(`parley: call path ${sw.from} → ${sw.to || "none"} (${sw.reason})`);
          }
          s.switches = st.tunnel.switches.length;
        }
        const prev = s.last;
        s.last = { lost: st.packetsLost, received: st.packetsReceived, at: Date.now() };
        let quality: Quality = "unknown";
        if (prev) {
          const got = st.packetsReceived - prev.received, lost = Math.max(0, st.packetsLost - prev.lost);
          const loss = got + lost > 0 ? lost / (got + lost) : 1;
          if (got === 0 || loss >= 0.1 || st.rttMs >= 800 || st.jitterMs >= 100) quality = "poor";
          else if (loss >= 0.02 || st.rttMs >= 300 || st.jitterMs >= 40) quality = "fair";
          else quality = "good";
        }
        if (quality !== s.view.quality || st.path !== s.view.path) this.update(s, { quality, path: st.path });
      } catch {
        // the connection closed under us
      }
    }, statsEvery);
  }

  // --- ending ---

  private end(s: Session, outcome: CallOutcome, reason: string, notify: boolean): void {
    if (s.closed) return;
    s.closed = true;
    if (notify && (s.described || !s.view.outgoing)) this.send(s.view.peer, { id: s.view.id, kind: "hangup" });
    this.finished(s.view.id);
    this.release(s);
    if (this.cur === s) this.cur = null;
    this.ring.stop();
    const duration = s.view.connectedAt ? Date.now() - s.view.connectedAt : 0;
    if (outcome === "completed" && !s.view.connectedAt) outcome = s.view.outgoing ? "cancelled" : "missed";
    const summary = summarize(s.view, outcome, reason, duration);
    s.view = { ...s.view, phase: "ended", outcome, summary };
    this.shown = { ...s.view };
    this.notify();
    this.record(s.view.peer, {
      id: s.view.id,
      outgoing: s.view.outgoing,
      outcome,
      duration_ms: duration,
      reason,
      at: s.view.startedAt,
    });
    // The ended call stays on screen a moment, unless another one starts.
    window.setTimeout(() => {
      if (this.shown?.id === s.view.id && !this.cur) this.dismiss();
    }, 4000);
  }

  private release(s: Session): void {
    this.clearTimers(s);
    window.clearInterval(s.ticker);
    window.clearTimeout(s.leftTimer);
    s.tunnel?.close();
    s.tunnelAudio?.close();
    s.local?.getTracks().forEach((t) => t.stop());
    if (s.audio) {
      s.audio.pause();
      s.audio.srcObject = null;
    }
    try {
      s.pc?.close();
    } catch {
      // already closed
    }
  }

  private clearTimers(s: Session): void {
    s.timers.forEach((t) => window.clearTimeout(t));
    s.timers = [];
  }

  private finished(id: string): void {
    this.done.add(id);
    if (this.done.size > 200) this.done.delete(this.done.values().next().value!);
  }

  private record(peer: string, r: Parameters<Parley["recordCall"]>[1]): void {
    this.parley.recordCall(peer, r).catch((e) => console.warn("parley: recording the call:", e));
  }

  /** Sends signals one at a time, in order (the wire keeps no order
   * between concurrent sends). */
  private send(peer: string, sig: CallSignal): Promise<unknown> {
    const p = this.sending.then(() => this.parley.sendCallSignal(peer, sig));
    this.sending = p.catch((e) => console.warn(`parley: call signal ${sig.kind}:`, e));
    return p;
  }

  private update(s: Session, change: Partial<CallView>): void {
    s.view = { ...s.view, ...change };
    if (this.cur === s) {
      this.shown = { ...s.view };
      this.notify();
    }
  }

  private notify(): void {
    for (const cb of this.listeners) cb(this.shown);
  }
}

class SetupError extends Error {}

function setupError(e: unknown): string {
  if (e instanceof SetupError) return e.message;
  const name = (e as { name?: string })?.name;
  if (name === "NotAllowedError") return "the microphone was not allowed (the browser's site settings can allow it)";
  if (name === "NotFoundError") return "no microphone was found";
  if (name === "NotReadableError") return "the microphone is in use by another program";
  return errorText(e);
}

function failure(s: Session, relayOnly: boolean, haveRelay: boolean): string {
  if (s.view.connectedAt) return "the connection broke and did not recover";
  if (relayOnly) return "no path through the relay (is it reachable from here?)";
  if (!haveRelay) return "no direct path between the devices, and the server has no relay";
  return "no path between the devices, direct or relayed";
}

function summarize(v: CallView, outcome: CallOutcome, reason: string, ms: number): string {
  switch (outcome) {
    case "completed":
      return `Call ended · ${duration(ms)}`;
    case "missed":
      return v.outgoing ? "Call ended" : `Missed call from ${v.peer}`;
    case "declined":
      return v.outgoing ? `${v.peer} declined the call` : "Call declined";
    case "busy":
      return `${v.peer} is busy in another call`;
    case "no_answer":
      return `${v.peer} did not answer`;
    case "cancelled":
      return "Call cancelled";
    case "failed":
      return reason ? `Call failed: ${reason}` : "Call failed";
  }
}

/** 0:42, 12:05, 1:02:03 (as client.CallDuration). */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

/** The call screen's name of a tunnel carrier. */
function tunnelPath(carrier: string): string {
  const names: Record<string, string> = { webtransport: "WebTransport", websocket: "WebSocket" };
  return `server tunnel (${names[carrier] ?? carrier})`;
}

function tunnelStats(s: Session): CallStats {
  const t = s.tunnel!.stats();
  const a = s.tunnelAudio!.stats();
  return {
    id: s.view.id,
    phase: s.view.phase,
    path: tunnelPath(t.path),
    setupMs: s.firstAudio ? s.firstAudio - s.dialedAt : 0,
    packetsSent: t.packets_sent,
    packetsReceived: t.received,
    packetsLost: t.concealed,
    jitterMs: 0,
    rttMs: t.rtt_ms,
    audioEnergy: a.energy,
    audioLevel: a.level,
    bytesReceived: 0,
    tunnel: t,
    tunnelAudio: a,
  };
}

function readStats(s: Session, report: RTCStatsReport): CallStats {
  const out: CallStats = {
    id: s.view.id,
    phase: s.view.phase,
    path: "",
    setupMs: s.firstAudio ? s.firstAudio - s.dialedAt : 0,
    packetsSent: 0,
    packetsReceived: 0,
    packetsLost: 0,
    jitterMs: 0,
    rttMs: 0,
    audioEnergy: 0,
    audioLevel: 0,
    bytesReceived: 0,
  };
  let pairId = "";
  const byId = new Map<string, Record<string, unknown>>();
  report.forEach((r: Record<string, unknown>) => {
    byId.set(r.id as string, r);
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId as string;
  });
  for (const r of byId.values()) {
    const n = (k: string) => (typeof r[k] === "number" ? (r[k] as number) : 0);
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      out.packetsReceived += n("packetsReceived");
      out.packetsLost += n("packetsLost");
      out.bytesReceived += n("bytesReceived");
      out.jitterMs = Math.max(out.jitterMs, n("jitter") * 1000);
      out.audioEnergy += n("totalAudioEnergy");
      out.audioLevel = Math.max(out.audioLevel, n("audioLevel"));
    } else if (r.type === "outbound-rtp" && r.kind === "audio") {
      out.packetsSent += n("packetsSent");
    } else if (r.type === "candidate-pair" && !pairId && r.nominated && r.state === "succeeded") {
      pairId = r.id as string;
    }
  }
  const pair = byId.get(pairId);
  if (pair) {
    out.rttMs = typeof pair.currentRoundTripTime === "number" ? pair.currentRoundTripTime * 1000 : 0;
    const local = byId.get(pair.localCandidateId as string);
    const remote = byId.get(pair.remoteCandidateId as string);
    if (local?.candidateType === "relay") out.path = `relay (${(local.relayProtocol as string) || "udp"})`;
    else if (remote?.candidateType === "relay") out.path = "relay (peer's)";
    else if (local) out.path = "direct";
  }
  return out;
}

/** The incoming-call sound: two short two-tone rings every 3 s, made with
 * Web Audio (no file to download), and a vibration where there is one. */
class Ringer {
  private ctx: AudioContext | null = null;
  private timer = 0;

  start(): void {
    this.stop();
    const burst = () => {
      try {
        this.ctx ??= new AudioContext();
        const ctx = this.ctx;
        void ctx.resume().catch(() => {});
        const gain = ctx.createGain();
        gain.gain.value = 0;
        gain.connect(ctx.destination);
        const t = ctx.currentTime;
        for (const [on, off] of [
          [0, 0.4],
          [0.6, 1.0],
        ]) {
          gain.gain.setValueAtTime(0.12, t + on);
          gain.gain.setValueAtTime(0, t + off);
        }
        for (const f of [440, 480]) {
          const o = ctx.createOscillator();
          o.frequency.value = f;
          o.connect(gain);
          o.start(t);
          o.stop(t + 1.1);
        }
      } catch {
        // no audio output: the screen still shows the call
      }
      navigator.vibrate?.([400, 200, 400]);
    };
    burst();
    this.timer = window.setInterval(burst, 3000);
  }

  stop(): void {
    if (!this.timer) return;
    window.clearInterval(this.timer);
    this.timer = 0;
    navigator.vibrate?.(0);
    void this.ctx?.suspend().catch(() => {});
  }

  /** "running" while ringing with sound, else "stopped" or the audio
   * context's state ("suspended": the browser does not let the page play
   * sound yet). */
  state(): string {
    if (!this.timer) return "stopped";
    return this.ctx?.state ?? "stopped";
  }
}
