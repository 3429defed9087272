// An in-memory Parley for developing the UI without the wasm core; used only
// when the page's URL has ?mock. Fake peers answer a second after a message
// arrives; "nobody" does not exist, so sends to it fail. ?mock&screen=NAME
// starts in a given state: register, chat, changed, safety, incoming (bob
// calls), locked, error, loading (see main.tsx and app.tsx).

import type { Account, CallSignal, Connection, Conversation, Message, Parley, ParleyError, ParleyEvent, SafetyNumber } from "./api";
import { usernamePattern } from "./format";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function fail(kind: string, message: string): ParleyError {
  return Object.assign(new Error(message), { kind });
}

function hex(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

/** A fake QR code: a random-looking module pattern drawn on a canvas. */
function fakeQR(seed: string): string {
  const n = 29, px = 6, c = document.createElement("canvas");
  c.width = c.height = (n + 8) * px;
  const g = c.getContext("2d")!;
  g.fillStyle = "#fff";
  g.fillRect(0, 0, c.width, c.height);
  g.fillStyle = "#000";
  let h = 7;
  for (const ch of seed) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const finder = (x: number, y: number) => {
    g.fillRect((x + 4) * px, (y + 4) * px, 7 * px, 7 * px);
    g.fillStyle = "#fff";
    g.fillRect((x + 5) * px, (y + 5) * px, 5 * px, 5 * px);
    g.fillStyle = "#000";
    g.fillRect((x + 6) * px, (y + 6) * px, 3 * px, 3 * px);
  };
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      if ((x < 8 && y < 8) || (x > n - 9 && y < 8) || (x < 8 && y > n - 9)) continue;
      h = (h * 1103515245 + 12345) >>> 0;
      if (h & 0x10000) g.fillRect((x + 4) * px, (y + 4) * px, px, px);
    }
  finder(0, 0);
  finder(n - 7, 0);
  finder(0, n - 7);
  return c.toDataURL("image/png");
}

export function createMock(screen: string): Parley {
  const now = Date.now();
  const minute = 60_000, hour = 60 * minute, day = 24 * hour;
  let account: Account | null =
    screen === "register" ? null : { user: "alice", device: 1, server: location.origin };
  let conn: Connection = "offline";
  let seq = 0;
  const history = new Map<string, Message[]>();
  const verified = new Set<string>(["bob"]);
  const changed = new Set<string>(["carol"]);
  const listeners = new Set<(e: ParleyEvent) => void>();
  const emit = (e: ParleyEvent) => listeners.forEach((cb) => cb(e));

  const add = (peer: string, m: Partial<Message>): Message => {
    const msg: Message = {
      seq: ++seq, id: hex(32), peer, outgoing: false, from: m.outgoing ? "" : `${peer}.1`, notice: false,
      text: "", sent_at: Date.now(), at: Date.now(), state: m.outgoing ? "sent" : "read", error: "", ...m,
    };
    if (!history.has(peer)) history.set(peer, []);
    history.get(peer)!.push(msg);
    return msg;
  };

  // Seed conversations.
  add("dave", { text: "Are we still on for the climbing trip?", sent_at: now - 9 * day, at: now - 9 * day });
  add("dave", { outgoing: true, state: "delivered", text: "Yes! Saturday 8am at the usual place.", sent_at: now - 9 * day + hour, at: now - 9 * day + hour });
  add("bob", { text: "Hey Alice, did you get the slides?", sent_at: now - day - 3 * hour, at: now - day - 3 * hour });
  add("bob", { outgoing: true, state: "delivered", text: "Yes, thanks. Reading them now.", sent_at: now - day - 2 * hour, at: now - day - 2 * hour });
  add("bob", { text: "Great. Tell me what you think of the part on key transparency — I'm not sure it is clear enough for people who have never heard of it.", sent_at: now - 40 * minute, at: now - 40 * minute });
  add("bob", { outgoing: true, state: "delivered", text: "It reads well.\nOne thing: the diagram on page 4 has the arrows reversed.", sent_at: now - 20 * minute, at: now - 20 * minute });
  add("bob", { outgoing: true, state: "sent", text: "Also, lunch tomorrow?", sent_at: now - 19 * minute, at: now - 19 * minute });
  add("bob", { outgoing: true, state: "failed", error: "unavailable: the server did not answer", text: "Say 12:30?", sent_at: now - 18 * minute, at: now - 18 * minute });
  add("carol", { notice: true, text: "carol's safety number changed", sent_at: now - 10 * minute, at: now - 10 * minute });
  add("carol", { state: "unread", text: "I got a new phone 📱", sent_at: now - 9 * minute, at: now - 9 * minute });
  add("carol", { state: "unread", text: "Can you check my safety number?", sent_at: now - 8 * minute, at: now - 8 * minute });

  const setState = async (m: Message, state: Message["state"], after: number, error = "") => {
    await sleep(after);
    m.state = state;
    m.error = error;
    if (state === "sent") m.at = Date.now();
    emit({ type: "update", message: { ...m } });
  };

  const deliver = async (m: Message) => {
    await sleep(700);
    if (conn !== "online") return; // stays "sending" while offline, like the outbox
    if (m.peer === "nobody") return setState(m, "failed", 0, "not_found: no user called nobody on this server");
    await setState(m, "sent", 0);
    await setState(m, "delivered", 600);
    await sleep(900);
    const reply = add(m.peer, { state: "unread", text: `You said: “${m.text}”` });
    emit({ type: "message", message: { ...reply } });
  };

  const connect = async () => {
    if (conn === "online" || conn === "connecting") return;
    conn = "connecting";
    emit({ type: "connection", state: conn });
    await sleep(600);
    conn = "online";
    emit({ type: "connection", state: conn });
    emit({ type: "caught_up" });
  };

  // Calls: a fake peer in this page (a second RTCPeerConnection sending a
  // tone) answers after a moment; "dave" is busy and "nobody" declines.
  // ?mock&screen=incoming has bob call at once.
  let peerPC: RTCPeerConnection | null = null;
  const callEmit = (peer: string, signal: CallSignal) =>
    emit({ type: "call", peer, signal: { ...signal, from: `${peer}.1`, sent_at: Date.now() } });
  const fakePeer = (peer: string, id: string) => {
    peerPC?.close();
    const pc = new RTCPeerConnection();
    peerPC = pc;
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 330;
    const dst = ctx.createMediaStreamDestination();
    osc.connect(dst);
    osc.start();
    dst.stream.getTracks().forEach((t) => pc.addTrack(t, dst.stream));
    pc.onicecandidate = (e) => e.candidate && callEmit(peer, { id, kind: "ice", candidate: JSON.stringify(e.candidate.toJSON()) });
    return pc;
  };
  if (screen === "incoming")
    setTimeout(async () => {
      const pc = fakePeer("bob", hex(32));
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      callEmit("bob", { id: hex(32), kind: "offer", sdp: offer.sdp });
    }, 1500);

  const p: Parley = {
    async open() {
      await sleep(200);
      if (screen === "locked") throw fail("locked", "Parley is open in another tab of this browser.");
      return account;
    },
    async register(server, username) {
      await sleep(1200);
      if (!usernamePattern.test(username)) throw fail("invalid", "username: " + "3 to 32 of a-z 0-9 _ . -");
      if (username === "taken") throw fail("conflict", "the username taken is already registered");
      account = { user: username, device: 1, server };
      history.clear();
      void connect();
      return account;
    },
    start() {
      void connect();
    },
    account: () => account,
    connection: () => conn,
    async send(peer, text) {
      if (text.length > 4000) throw fail("too_large", "message too long");
      const m = add(peer, { outgoing: true, state: "sending", text });
      void deliver(m);
      return { ...m };
    },
    async retry(peer, id) {
      const m = history.get(peer)?.find((x) => x.id === id);
      if (!m) throw fail("not_found", "no such message");
      m.state = "sending";
      m.error = "";
      void deliver(m);
      return { ...m };
    },
    async conversations() {
      await sleep(30);
      const out: Conversation[] = [];
      for (const [peer, ms] of history) {
        out.push({
          peer,
          last: ms.length ? { ...ms[ms.length - 1] } : null,
          unread: ms.filter((m) => m.state === "unread").length,
          verified: verified.has(peer),
          identity_changed: changed.has(peer),
        });
      }
      return out.sort((a, b) => (b.last?.seq ?? 0) - (a.last?.seq ?? 0));
    },
    async messages(peer, afterSeq = 0) {
      await sleep(50);
      return (history.get(peer) ?? []).filter((m) => m.seq > afterSeq).map((m) => ({ ...m }));
    },
    async markRead(peer) {
      for (const m of history.get(peer) ?? []) if (m.state === "unread") m.state = "read";
    },
    async safetyNumber(peer): Promise<SafetyNumber> {
      await sleep(300);
      if (peer === "nobody") throw fail("not_found", "no user called nobody");
      let h = 1;
      let digits = "";
      for (const ch of [account?.user ?? "", peer].sort().join(":")) h = (h * 131 + ch.charCodeAt(0)) >>> 0;
      while (digits.length < 60) {
        h = (h * 1103515245 + 12345) >>> 0;
        digits += String((h >>> 8) % 100000).padStart(5, "0");
      }
      return { digits, qr: fakeQR(digits), verified: verified.has(peer) };
    },
    async setVerified(peer, v) {
      await sleep(100);
      if (v) verified.add(peer);
      else verified.delete(peer);
      changed.delete(peer);
    },
    onEvent(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    stats: () => ({ go_sys_bytes: 0, go_heap_bytes: 0 }),
    newCallId: () => hex(32),
    async sendCallSignal(peer, sig) {
      await sleep(20);
      if (conn !== "online") throw fail("unavailable", "not connected to the server");
      switch (sig.kind) {
        case "offer":
          if (peer === "dave" || peer === "nobody") {
            setTimeout(() => callEmit(peer, { id: sig.id, kind: peer === "dave" ? "busy" : "decline" }), 1200);
            return;
          }
          if (!sig.sdp) {
            // A tunnel-only offer: answered, and then openTunnel fails (the mock runs no tunnel).
            setTimeout(() => callEmit(peer, { id: sig.id, kind: "answer", tunnel_key: p.newTunnelKey() }), 1500);
            return;
          }
          setTimeout(async () => {
            const pc = fakePeer(peer, sig.id);
            await pc.setRemoteDescription({ type: "offer", sdp: sig.sdp });
            const answer = await pc.createAnswer();
            await pc.setLocalDescription(answer);
            callEmit(peer, { id: sig.id, kind: "answer", sdp: answer.sdp });
          }, 1500);
          return;
        case "answer":
          await peerPC?.setRemoteDescription({ type: "answer", sdp: sig.sdp });
          return;
        case "ice":
          await peerPC?.addIceCandidate(JSON.parse(sig.candidate ?? "{}")).catch(() => {});
          return;
        default:
          peerPC?.close();
          peerPC = null;
      }
    },
    async turnServers() {
      return [];
    },
    newTunnelKey: () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))),
    async openTunnel() {
      throw fail("unavailable", "the mock server runs no call tunnel");
    },
    async recordCall(peer, r) {
      const texts: Record<string, string> = {
        completed: `${r.outgoing ? "Outgoing" : "Incoming"} call`,
        missed: `Missed call from ${peer}`,
        declined: r.outgoing ? `${peer} declined the call` : `You declined a call from ${peer}`,
        busy: `${peer} was busy in another call`,
        no_answer: `${peer} did not answer`,
        cancelled: "Cancelled call",
        failed: `Call failed: ${r.reason ?? ""}`,
      };
      const m = add(peer, { notice: true, text: texts[r.outcome], state: r.outcome === "missed" ? "unread" : "read" });
      emit({ type: "message", message: { ...m } });
      return { ...m };
    },
  };
  return p;
}
