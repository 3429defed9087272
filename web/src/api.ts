// The contract between the web UI (TypeScript) and the protocol core (the
// Go client library compiled to WebAssembly, web/wasm). The wasm module,
// once started, sets globalThis.parley to an object of type Parley and
// dispatches a "parley-ready" event on window. Every method that touches
// storage or the network returns a Promise; a rejected Promise carries a
// ParleyError.

/** Where a message is in its life. */
export type MessageState =
  | "sending" // outgoing, not yet on the server (the outbox; retried by itself)
  | "sent" // outgoing, durable (on the server's disk, or on the recipient's device)
  | "delivered" // outgoing, the recipient's device stored it (a delivery receipt came back)
  | "failed" // outgoing, refused for good (error says why); retry() may send it again
  | "unread" // incoming, not yet shown
  | "read"; // incoming, shown

export interface Message {
  seq: number; // local order; larger is newer
  id: string; // 32 hex digits, end to end
  peer: string; // the other party's username
  outgoing: boolean;
  from: string; // sending device "user.device" (incoming only, else "")
  notice: boolean; // text is a notice from this client (e.g. "safety number changed"), not from peer
  text: string;
  sent_at: number; // sender's clock, Unix milliseconds
  at: number; // when stored here (incoming) or on the server (sent), Unix ms
  state: MessageState;
  error: string; // why a send failed ("" otherwise)
}

export interface Account {
  user: string;
  device: number;
  server: string; // base URL, e.g. "http://127.0.0.1:8080"
}

export interface Conversation {
  peer: string;
  last: Message | null; // the newest message, notices included
  unread: number;
  verified: boolean; // the user marked the current safety number verified
  identity_changed: boolean; // the peer's key changed since it was verified or first seen, and the user has not acknowledged it
}

export interface SafetyNumber {
  digits: string; // 60 digits, no spaces
  qr: string; // a data: URL of a PNG QR code of the scannable form
  verified: boolean;
}

export type Connection = "connecting" | "online" | "reconnecting" | "offline";

export type ParleyEvent =
  | { type: "connection"; state: Connection; error?: string } // state changed
  | { type: "message"; message: Message } // a message arrived (already stored)
  | { type: "update"; message: Message } // a message changed state (sent, delivered, failed)
  | { type: "identity_changed"; peer: string }
  | { type: "caught_up" } // everything queued on the server while offline has arrived
  | { type: "call"; peer: string; signal: CallSignal }; // a call signal from a device of peer

/** Call signalling (client/call.go): WebRTC offer/answer with trickle ICE,
 * carried end to end inside the Signal session, so the DTLS fingerprints in
 * the SDP are authenticated and the server cannot sit in the middle. */
export type CallSignalKind = "offer" | "answer" | "ice" | "hangup" | "busy" | "decline" | "move" | "restart";

export interface CallSignal {
  id: string; // the call, 32 hex digits, chosen by the caller
  kind: CallSignalKind;
  sdp?: string; // offer, answer, restart (an ICE restart's offer from the caller, or the callee's answer)
  candidate?: string; // ice: JSON of an RTCIceCandidateInit
  /** offer, answer: this side's share of the call's tunnel secret (32
   * bytes, base64; parley.newTunnelKey()). An offer with a share and no
   * sdp offers the server's tunnel only (tier 2); its answer has a share
   * and no sdp either. */
  tunnel_key?: string;
  from?: string; // received: the sending device, "user.device"
  sent_at?: number; // received: the sender's clock, Unix ms
}

/** The tunnel (tier 2) hands the page each 20 ms frame as it falls due. */
export type FrameStatus =
  | "played" // the frame, in time
  | "repaired" // the frame, from a later packet's redundant copy
  | "concealed"; // no frame for this slot (lost, or the buffer grows its delay): frame is null

/** What a tunnel call tells the page; called from the playout clock, so
 * each must return at once. */
export interface TunnelHandlers {
  /** The frame due now: an Opus packet (empty for the sender's silence),
   * or null when concealed. Not called before the first frames arrive. */
  play(frame: Uint8Array | null, status: FrameStatus): void;
  /** The other device entered (true) or left (false) the server's room. */
  peer(present: boolean): void;
  /** The first frame from the other device arrived. */
  audio?(): void;
  /** A packet came while the call is held (TunnelCall.hold): true plays
   * it and what follows as a new stream, false drops it. */
  resume?(): boolean;
}

/** What a tunnel call has done so far (tunnel.SessionStats). */
export interface TunnelStats {
  path: string; // the carrier now: "webtransport", "websocket"
  received: number; // distinct frames received
  played: number; // frames played (repaired ones included)
  repaired: number; // played from a redundant copy
  concealed: number; // slots with no frame in time
  trailing: number; // slots concealed after the last frame: the stream ended, or more is to come
  late: number; // frames that came after their slot
  skipped: number; // frames received but skipped to shrink the delay
  inserted: number; // slots concealed to grow the delay
  longest_gap_ms: number; // longest run of concealed slots
  delay_ms: number; // the jitter buffer's playout delay now
  target_delay_ms: number;
  max_target_delay_ms: number; // the highest target so far
  loss_before_repair: number; // share of frames whose first copy missed its slot
  rtt_ms: number; // to the server, on the active carrier
  packets_sent: number;
  packets_dropped: number; // the carrier could not take them in time
  bitrate: number; // the encoder bitrate the sender chooses, bit/s
  redundancy: number; // earlier frames each packet repeats
  frames_per_packet: number; // new frames each packet bundles
  switches: { at: number; from: string; to: string; reason: string }[]; // moves between carriers
}

/** A call's audio through the server's tunnel. */
export interface TunnelCall {
  /** Sends one encoded 20 ms Opus frame (empty: silence). Never waits:
   * a frame the path cannot take in time is dropped. */
  send(frame: Uint8Array): void;
  /** The carrier now: "webtransport" or "websocket". */
  path(): string;
  stats(): TunnelStats;
  /** Stops playing out: the other side's audio goes another way (WebRTC).
   * Packets that come are dropped unless the resume handler takes them. */
  hold(): void;
  /** Leaves the room; the handlers are not called after. */
  close(): void;
}

/** How a call ended, for the history (client.CallOutcome). */
export type CallOutcome = "completed" | "missed" | "declined" | "busy" | "no_answer" | "cancelled" | "failed";

export interface CallRecord {
  id: string;
  outgoing: boolean;
  outcome: CallOutcome;
  duration_ms?: number; // completed
  reason?: string; // failed
  at?: number; // when the call began, Unix ms
}

/** Stable error kinds (see wire/status.go); message is for people. */
export interface ParleyError extends Error {
  kind:
    | "invalid"
    | "not_found"
    | "conflict"
    | "unauthorized"
    | "too_large"
    | "rate_limited"
    | "unavailable"
    | "locked" // another tab of this browser profile has Parley open
    | "internal"
    | string;
}

export interface Parley {
  /** Opens local storage and takes this profile's tab lock. Rejects with kind
   * "locked" when another tab holds it. Returns the account, or null before
   * registration. Call once, first. */
  open(): Promise<Account | null>;
  /** Makes this device's keys locally and registers username on server
   * (normally location.origin). Then starts the connection. */
  register(server: string, username: string): Promise<Account>;
  /** Starts (or keeps) the connection loop of a registered account;
   * progress arrives as "connection" events. Idempotent. */
  start(): void;
  account(): Account | null;
  connection(): Connection;
  /** Puts a text in the outbox and returns it at once (state "sending"). */
  send(peer: string, text: string): Promise<Message>;
  /** Sends a failed message again (its state goes back to "sending"). */
  retry(peer: string, id: string): Promise<Message>;
  /** Every conversation, the most recent first. */
  conversations(): Promise<Conversation[]>;
  /** The history with peer, oldest first; with afterSeq, only newer messages. */
  messages(peer: string, afterSeq?: number): Promise<Message[]>;
  /** Marks every unread message from peer read. */
  markRead(peer: string): Promise<void>;
  /** Fetches peer's keys if needed (needs a connection the first time). */
  safetyNumber(peer: string): Promise<SafetyNumber>;
  /** Marks the current safety number with peer verified (or not); also
   * clears identity_changed. */
  setVerified(peer: string, verified: boolean): Promise<void>;
  /** Subscribes to events; returns a function that unsubscribes. */
  onEvent(cb: (e: ParleyEvent) => void): () => void;
  /** A fresh call id. */
  newCallId(): string;
  /** Sends a call signal to every device of peer; needs a connection
   * (rejects with kind "unavailable" otherwise). Send them one at a time,
   * in order. */
  sendCallSignal(peer: string, signal: CallSignal): Promise<void>;
  /** The server's TURN relay with a fresh short-lived credential, as
   * RTCIceServer objects ([] if the server runs none). Needs a connection. */
  turnServers(): Promise<RTCIceServer[]>;
  /** A fresh share of a call's tunnel secret (base64 of 32 random bytes). */
  newTunnelKey(): string;
  /** Joins the server's tunnel for call id with the two shares (caller:
   * this device made the call) and starts the playout. Rejects when no
   * carrier could join (kind "unavailable": no connection, or the server
   * runs no tunnel). carrier, if set ("websocket", "webtransport"), is the
   * only carrier it uses. */
  openTunnel(id: string, caller: boolean, mine: string, theirs: string, handlers: TunnelHandlers, carrier?: string): Promise<TunnelCall>;
  /** Writes what a call came to into the history with peer (once per call
   * id) and returns the notice; a "message" event follows. */
  recordCall(peer: string, record: CallRecord): Promise<Message>;
  /** Diagnostics: the Go runtime's memory (what it took from the browser,
   * and the live heap), in bytes. */
  stats(): { go_sys_bytes: number; go_heap_bytes: number };
}

declare global {
  // eslint-disable-next-line no-var
  var parley: Parley | undefined;
}
