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
//
// A WebRTC call races the tunnel, as the CLI's --path auto does (package
// call, Config.Fallback): the offer carries our share of the tunnel secret
// beside the SDP, a callee that can answer with its own does, and both
// then open the tunnel beside ICE. The call starts on WebRTC if it comes up
// within raceGrace of the answer, else on whichever is up first; one that
// started in the tunnel moves up to WebRTC when that comes up over UDP;
// one on WebRTC moves to the tunnel when its connection fails or goes
// quiet, and tells the other side with a "move" signal, and moves back up
// when WebRTC has been up again for a while (the caller restarts ICE if it
// does not come back by itself) or the other side did. We send on
// one way at a time (the RTP sender's track is removed while the tunnel
// carries the call) and hear the way the other side sends on: the tunnel
// is held while WebRTC's audio comes, and resumes when the other side's
// frames come and WebRTC has been quiet for resumeAfter (or the call moved
// down; then WebRTC's audio is taken for the other side's move back up
// once the tunnel's, which came after the move, has stopped).

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
/** How long a call that races the tunnel gives WebRTC to come up, from
 * the answer, before it may start in the tunnel (call.RaceGrace). */
const raceGrace = 1_000;
/** How long WebRTC's audio must have been quiet before the tunnel's is
 * heard instead (the stragglers of a move up are not). */
const resumeAfter = 200;
/** After a move down, how long WebRTC must have been up again before the
 * call moves back up: doubled by each further move down, up to
 * maxMoveBackAfter (call.moveBackAfter). */
const moveBackAfter = 2_000;
const maxMoveBackAfter = 32_000;
/** After a move down, when the caller restarts ICE if WebRTC has not
 * come back by itself: doubled by each restart, up to maxRestartAfter
 * (call.restartAfter). */
const restartAfter = 4_000;
const maxRestartAfter = 60_000;

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
  /** The call's moves between WebRTC and the tunnel: "tunnel → webrtc
   * (WebRTC came up over UDP)". */
  moves: string[];
}

export interface CallSettings {
  /** Media only through the TURN relay: the peer never learns this device's IP address. */
  relayOnly(): boolean;
  /** Calls we make carry their audio through the server's tunnel (tier 2), not WebRTC. */
  tunnel(): boolean;
  /** WebRTC calls race the tunnel and move between the two (on by default). */
  race(): boolean;
  /** The tunnel's one carrier, "websocket" or "webtransport"; "" races them (the default). */
  carrier(): string;
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
  // Tunnel calls, and WebRTC calls that race the tunnel:
  tunnelOnly: boolean; // the call goes through the tunnel alone
  share?: string; // our share of the tunnel secret
  theirs?: string; // the other side's
  tunnel: TunnelCall | null;
  tunnelAudio: TunnelAudio | null;
  peerIn: boolean; // the other device is in the server's room
  leftTimer: number; // it left: end the call unless it comes back
  switches: number; // moves between carriers logged so far
  // A WebRTC call that races the tunnel:
  race: boolean;
  onTunnel: boolean; // our audio goes through the tunnel now
  movedDown: boolean; // it moved from WebRTC to the tunnel, and not back up
  movedAt: number; // when it last moved down
  downs: number; // moves down so far
  backTimer: number; // moves the call back up when WebRTC has stayed up
  restartTimer: number; // the caller's next ICE restart
  restarts: number; // ICE restarts sent or answered
  lastTunnel: number; // when the tunnel last played a frame of the other side's
  graceOver: boolean; // WebRTC had raceGrace to come up
  rtcFailed: boolean; // ICE failed before the call connected
  opening: boolean; // the tunnel is being opened
  hearTunnel: boolean; // we hear the tunnel's audio (it is not held)
  lastRTP: number; // when WebRTC's audio last came (polled)
  rtpMark: number; // the receiver's last packet time seen
  rtpWatch: number;
  moves: string[];
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
      if (this.settings.race()) s.share = this.parley.newTunnelKey(); // the call races the tunnel if the callee answers with its share
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
      const theirs = this.settings.race() ? s.offer.tunnel_key : undefined;
      if (theirs) s.share = this.parley.newTunnelKey(); // the caller races the tunnel: so do we
      await this.describe(s, "answer", s.pc!.localDescription!.sdp);
      this.startConnectTimer(s);
      if (theirs) void this.startRace(s, theirs);
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
    if (s?.tunnel && (s.tunnelOnly || s.onTunnel)) return tunnelStats(s);
    if (!s?.pc) return null;
    const st = readStats(s, await s.pc.getStats());
    if (s.tunnel) st.tunnel = s.tunnel.stats(); // standing by
    return st;
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
      case "move":
        return this.moveDown(s, `${peer} moved the call to the tunnel`, false);
      case "restart":
        // Its description is set before the candidates that follow.
        if (s.race && s.haveRemote) void this.restarted(s, sig);
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
    if (s.tunnelOnly) {
      if (!sig.tunnel_key) return this.end(s, "failed", "the answer has no tunnel key", true);
      this.startConnectTimer(s);
      return this.openTunnel(s, sig.tunnel_key);
    }
    try {
      await s.pc!.setRemoteDescription({ type: "answer", sdp: sig.sdp! });
      await this.flushRemoteICE(s);
      this.startConnectTimer(s);
      if (s.share && sig.tunnel_key) void this.startRace(s, sig.tunnel_key);
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
      tunnelOnly: false,
      race: false,
      onTunnel: false,
      movedDown: false,
      movedAt: 0,
      downs: 0,
      backTimer: 0,
      restartTimer: 0,
      restarts: 0,
      lastTunnel: 0,
      graceOver: false,
      rtcFailed: false,
      opening: false,
      hearTunnel: false,
      lastRTP: 0,
      rtpMark: 0,
      rtpWatch: 0,
      moves: [],
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
      if (s.movedDown) return this.whileMoved(s); // WebRTC carries nothing; it may come back
      switch (pc.connectionState) {
        case "connected":
          if (!s.view.connectedAt) this.connected(s);
          else if (s.onTunnel) void this.maybeMoveUp(s);
          break;
        case "disconnected":
          if (s.race && s.view.connectedAt && !s.onTunnel) this.moveDown(s, "nothing came over WebRTC for a while", true);
          break;
        case "failed":
          if (s.race) {
            if (s.onTunnel) break; // the tunnel carries the call
            if (s.view.connectedAt) return this.moveDown(s, "WebRTC failed", true);
            s.rtcFailed = true;
            if (s.tunnel || s.opening) return this.raceStart(s);
          }
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
    s.tunnelOnly = true;
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
    s.tunnelOnly = true;
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

  /** Joins the server's room with both shares and starts the audio (in
   * a race, held until the tunnel carries the call). */
  private async openTunnel(s: Session, theirs: string): Promise<void> {
    s.theirs = theirs;
    s.opening = true;
    try {
      if (!s.tunnelAudio) await this.prepareRaceAudio(s);
      if (s.closed) return;
      const audio = s.tunnelAudio!;
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
          resume: () => this.resumeTunnel(s),
          played: () => {
            s.lastTunnel = Date.now();
          },
        }),
        this.settings.carrier(),
      );
      s.opening = false;
      if (s.closed) return call.close();
      s.tunnel = call;
      if (s.race && !s.hearTunnel) call.hold(); // we hear WebRTC until the other side's frames come this way
      if (!s.race || s.onTunnel) {
        audio.attach(call);
        this.update(s, { path: tunnelPath(call.path()) });
      }
    } catch (e) {
      s.opening = false;
      if (s.closed) return;
      // A call that races goes on while WebRTC may carry it.
      if (s.race && !s.movedDown && !s.rtcFailed) {
        console.info("parley: the call's tunnel did not open; the call waits for WebRTC:", e);
        return;
      }
      this.end(s, "failed", `the server's call tunnel: ${errorText(e)}`, true);
    }
  }

  // --- racing WebRTC and the tunnel ---

  /** Opens the tunnel beside WebRTC, once both shares are known, and gives
   * WebRTC raceGrace to come up before the call may start in the tunnel. */
  private async startRace(s: Session, theirs: string): Promise<void> {
    if (s.closed) return;
    s.race = true;
    s.timers.push(
      window.setTimeout(() => {
        s.graceOver = true;
        this.raceStart(s);
      }, raceGrace),
    );
    this.watchRTP(s);
    await this.openTunnel(s, theirs);
  }

  /** The codec of the tunnel, on the microphone WebRTC sends. */
  private async prepareRaceAudio(s: Session): Promise<void> {
    s.tunnelAudio = await TunnelAudio.open(s.local!);
    s.tunnelAudio.setMuted(s.view.muted);
    if (s.closed) this.release(s);
  }

  /** Starts a racing call in the tunnel if it has not connected, the other
   * device is in the room, and WebRTC had its grace, failed, or was left. */
  private raceStart(s: Session): void {
    if (s.closed || s.view.connectedAt || !s.peerIn || !(s.graceOver || s.rtcFailed || s.movedDown)) return;
    this.toTunnel(s);
    console.info("parley: call path: tunnel first (WebRTC was not up within 1 s of the answer)");
    this.connected(s);
  }

  /** Our audio goes through the tunnel from now: the WebRTC sender stops
   * (a disabled track would still send RTP, which the other side would
   * take for WebRTC's audio). */
  private toTunnel(s: Session): void {
    s.onTunnel = true;
    void this.audioSender(s)?.replaceTrack(null).catch(() => {});
    if (s.tunnel) {
      s.tunnelAudio?.attach(s.tunnel);
      this.update(s, { path: tunnelPath(s.tunnel.path()) });
    }
  }

  private audioSender(s: Session): RTCRtpSender | undefined {
    return s.pc?.getSenders().find((x) => x.track?.kind === "audio" || x.track === null);
  }

  /** Moves a call that started in the tunnel up to WebRTC, which came
   * up: over UDP only (through the relay over TCP or TLS it is no better
   * than the tunnel). */
  private async maybeMoveUp(s: Session): Promise<void> {
    const st = readStats(s, await s.pc!.getStats());
    if (s.closed || s.movedDown || !s.onTunnel) return;
    if (overTCP(st.path)) {
      console.info(`parley: WebRTC came up through the ${st.path}; the call stays in the tunnel`);
      return;
    }
    this.moveUp(s, st.path, "WebRTC came up over UDP");
  }

  /** Our audio goes over WebRTC, on path, from now. */
  private moveUp(s: Session, path: string, reason: string): void {
    s.onTunnel = false;
    s.tunnelAudio?.detach();
    const mic = s.local?.getAudioTracks()[0];
    if (mic) void this.audioSender(s)?.replaceTrack(mic).catch(() => {});
    this.moved(s, `tunnel → webrtc (${reason})`);
    this.update(s, { path });
  }

  /** Follows WebRTC's state after a move down: up again, the call moves
   * back up once it has stayed up for a while; failed, the caller
   * restarts ICE. */
  private whileMoved(s: Session): void {
    switch (s.pc?.connectionState) {
      case "connected":
        if (!s.backTimer) {
          const d = Math.min(moveBackAfter * 2 ** Math.max(s.downs - 1, 0), maxMoveBackAfter);
          s.backTimer = window.setTimeout(() => {
            s.backTimer = 0;
            void this.moveBack(s, "");
          }, d);
        }
        break;
      case "disconnected":
      case "failed":
        window.clearTimeout(s.backTimer);
        s.backTimer = 0;
        if (s.pc.connectionState === "failed") this.scheduleRestart(s, 0);
        break;
    }
  }

  /** Moves a call that moved down back up to WebRTC if it is up and runs
   * over UDP; reason "" says that it came back. */
  private async moveBack(s: Session, reason: string): Promise<void> {
    if (s.closed || !s.movedDown || s.pc?.connectionState !== "connected") return;
    const st = readStats(s, await s.pc.getStats());
    if (s.closed || !s.movedDown) return;
    if (overTCP(st.path)) {
      console.info(`parley: WebRTC came back through the ${st.path}; the call stays in the tunnel`);
      return;
    }
    s.movedDown = false;
    window.clearTimeout(s.backTimer);
    window.clearTimeout(s.restartTimer);
    s.backTimer = s.restartTimer = 0;
    this.moveUp(s, st.path, reason || (s.restarts ? "WebRTC came back over UDP after an ICE restart" : "WebRTC came back over UDP"));
  }

  /** Has the caller restart ICE after d (0: the wait for the restarts so
   * far), unless a restart is due already. */
  private scheduleRestart(s: Session, d: number): void {
    if (!s.view.outgoing || s.restartTimer || !s.pc || s.closed) return;
    d ||= Math.min(restartAfter * 2 ** s.restarts, maxRestartAfter);
    s.restartTimer = window.setTimeout(() => {
      s.restartTimer = 0;
      void this.restartICE(s);
    }, d);
  }

  /** Sends an offer with fresh ICE credentials (RFC 8445 section 9; W3C
   * WebRTC, "ICE restart") unless WebRTC came back meanwhile, and
   * schedules the next. */
  private async restartICE(s: Session): Promise<void> {
    const pc = s.pc;
    if (s.closed || !s.movedDown || !pc || pc.connectionState === "connected") return;
    s.restarts++;
    this.scheduleRestart(s, 0);
    s.described = false; // the offer goes before the candidates it gathers
    try {
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      console.info("parley: restarting ICE to find a WebRTC path again");
      await this.describe(s, "restart", pc.localDescription!.sdp);
    } catch (e) {
      console.info("parley: could not restart ICE:", e);
      this.flushICE(s);
    }
  }

  /** Takes a restart signal: the caller's offer, which we answer, or the
   * callee's answer to ours. */
  private async restarted(s: Session, sig: CallSignal): Promise<void> {
    const pc = s.pc;
    if (!pc || !sig.sdp) return;
    try {
      if (s.view.outgoing) return await pc.setRemoteDescription({ type: "answer", sdp: sig.sdp });
      s.restarts++;
      s.described = false;
      await pc.setRemoteDescription({ type: "offer", sdp: sig.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await this.describe(s, "restart", pc.localDescription!.sdp);
    } catch (e) {
      console.info("parley: an ICE restart failed:", e);
      if (!s.described) this.flushICE(s);
    }
  }

  /** Moves the call from WebRTC to the tunnel (until WebRTC comes back:
   * whileMoved); with tell, the other side is asked to move too. */
  private moveDown(s: Session, reason: string, tell: boolean): void {
    if (s.closed || !s.race || s.movedDown) return;
    s.movedDown = true;
    s.movedAt = Date.now();
    s.downs++;
    window.clearTimeout(s.backTimer);
    s.backTimer = 0;
    if (s.pc && s.pc.connectionState !== "connected") this.scheduleRestart(s, restartAfter);
    if (!s.onTunnel) {
      this.toTunnel(s);
      this.moved(s, `webrtc → tunnel (${reason})`);
    }
    if (tell) this.send(s.view.peer, { id: s.view.id, kind: "move" });
    if (!s.tunnel && !s.opening && s.theirs) void this.openTunnel(s, s.theirs);
    this.raceStart(s); // the other side moved before we connected
  }

  private moved(s: Session, what: string): void {
    s.moves.push(what);
    console.info(`parley: call path ${what}`);
  }

  /** Whether the tunnel, held while we hear WebRTC, takes the packet that
   * came: the call moved down, or nothing came over WebRTC for
   * resumeAfter. */
  private resumeTunnel(s: Session): boolean {
    if (!s.movedDown && Date.now() - s.lastRTP < resumeAfter) return false;
    s.hearTunnel = true;
    return true;
  }

  /** Notes when WebRTC's audio comes (polling the receiver's last packet);
   * when it comes while we hear the tunnel, the other side moved up: the
   * tunnel is held. */
  private watchRTP(s: Session): void {
    s.rtpWatch = window.setInterval(() => {
      const rx = s.pc?.getReceivers().find((r) => r.track.kind === "audio");
      const src = rx?.getSynchronizationSources()[0];
      if (s.closed || !src || src.timestamp === s.rtpMark) return;
      s.rtpMark = src.timestamp;
      const now = Date.now();
      s.lastRTP = now;
      // After a move down, WebRTC's audio is the other side's move back
      // up once the tunnel's, which came after the move, has stopped.
      const back = s.movedDown && s.lastTunnel > s.movedAt && now - s.lastTunnel >= resumeAfter;
      if (s.hearTunnel && (!s.movedDown || back)) {
        s.hearTunnel = false;
        s.tunnel?.hold();
        if (back) void this.moveBack(s, `${s.view.peer} moved the call back up to WebRTC`);
      }
    }, 50);
  }

  /** The call is active: WebRTC is up, or the tunnel carries it. */
  private connected(s: Session): void {
    this.clearTimers(s);
    this.update(s, { phase: "active", connectedAt: Date.now() });
    this.startStats(s);
  }

  /** The other device came into the server's room, or left it. */
  private tunnelPeer(s: Session, present: boolean): void {
    if (s.closed) return;
    s.peerIn = present;
    window.clearTimeout(s.leftTimer);
    s.leftTimer = 0;
    if (present) return s.race ? this.raceStart(s) : this.tunnelActive(s);
    // It hung up and the hang-up (which travels the slower way) is late,
    // or lost: as when a WebRTC connection fails, wait a moment for it.
    if (s.view.connectedAt && (s.tunnelOnly || s.onTunnel)) s.leftTimer = window.setTimeout(() => this.end(s, "completed", "", true), hangupGrace);
  }

  /** The call is active once the other device is in the room and its
   * audio arrives. */
  private tunnelActive(s: Session): void {
    if (s.closed || !s.tunnelOnly || s.view.connectedAt || !s.peerIn || !s.firstAudio) return;
    this.connected(s);
  }

  /** Sends our description (and, for the tunnel, our share), then the
   * candidates found meanwhile. */
  private async describe(s: Session, kind: "offer" | "answer" | "restart", sdp?: string): Promise<void> {
    // A restart's description goes without the share, agreed at the start.
    await this.send(s.view.peer, { id: s.view.id, kind, sdp, tunnel_key: kind === "restart" ? undefined : s.share });
    this.flushICE(s);
  }

  /** From now on our candidates go out as they come; those found so far go now. */
  private flushICE(s: Session): void {
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
            s.tunnelOnly
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
        const st = s.tunnelOnly || s.onTunnel ? tunnelStats(s) : readStats(s, await s.pc!.getStats());
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
    window.clearInterval(s.rtpWatch);
    window.clearTimeout(s.leftTimer);
    window.clearTimeout(s.backTimer);
    window.clearTimeout(s.restartTimer);
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
/** Whether WebRTC's path (CallStats.path) reaches the relay over TCP or
 * TLS: no better than the tunnel. */
function overTCP(path: string): boolean {
  return path === "relay (tcp)" || path === "relay (tls)";
}

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
    moves: [...s.moves],
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
    moves: [...s.moves],
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
