// The lab's instrumentation of the web client (package lab/browser), run
// before the page's own scripts. It records what the browser would play
// from each remote audio track (Web Audio, after WebRTC's jitter buffer and
// concealment), samples the receiver's statistics every 50 ms once audio
// flows, and hands both over through globalThis.__lab.take().
(() => {
  const Native = RTCPeerConnection;
  const lab = { pcs: [], chunks: [], rate: 0, samples: [], ctx: null, timer: 0 };
  globalThis.__lab = lab;

  function record(stream) {
    if (lab.ctx) return; // one call
    const ctx = new AudioContext({ sampleRate: 48000 });
    tap(ctx, ctx.createMediaStreamSource(stream));
    void ctx.resume();
    lab.timer = setInterval(sample, 50);
  }

  // tap records what node (in ctx) plays.
  function tap(ctx, node) {
    lab.ctx = ctx;
    lab.rate = ctx.sampleRate;
    const proc = ctx.createScriptProcessor(4096, 1, 1);
    proc.onaudioprocess = (e) => lab.chunks.push({ at: performance.now(), data: new Float32Array(e.inputBuffer.getChannelData(0)) });
    node.connect(proc);
    proc.connect(ctx.destination); // a ScriptProcessor runs only when connected; its output is silence
  }

  // A call through the tunnel (the "tunnel" setting on) plays through the
  // web client's playout worklet (tunnel.ts), after its jitter buffer and
  // decoder: that is what is recorded. Its statistics are the tunnel's
  // own (parleyCalls.stats().tunnel), read by the lab.
  const NativeWorklet = globalThis.AudioWorkletNode;
  globalThis.AudioWorkletNode = function (ctx, name, ...rest) {
    const node = new NativeWorklet(ctx, name, ...rest);
    let tunnel = false;
    try { tunnel = localStorage.getItem("parley-tunnel") === "true"; } catch {}
    if (name === "parley-playout" && tunnel && !lab.ctx) tap(ctx, node);
    return node;
  };
  globalThis.AudioWorkletNode.prototype = NativeWorklet.prototype;

  async function sample() {
    const pc = lab.pcs[lab.pcs.length - 1];
    // Only while the call is on: a receiver that lost its sender conceals
    // until the call ends, which is not the path's doing.
    if (!pc || pc.connectionState === "closed" || globalThis.parleyCalls?.view()?.phase !== "active") return;
    const s = { at: performance.now() };
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") {
        s.concealed = r.concealedSamples || 0;
        s.total = r.totalSamplesReceived || 0;
        s.jbDelay = r.jitterBufferDelay || 0;
        s.jbCount = r.jitterBufferEmittedCount || 0;
        s.packets = r.packetsReceived || 0;
      }
    });
    lab.samples.push(s);
  }

  globalThis.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    lab.pcs.push(pc);
    pc.addEventListener("track", (e) => {
      if (e.track.kind === "audio") record(e.streams[0] || new MediaStream([e.track]));
    });
    return pc;
  };
  globalThis.RTCPeerConnection.prototype = Native.prototype;

  lab.take = async () => {
    clearInterval(lab.timer);
    const st = (await globalThis.parleyCalls?.stats?.()) || null; // null once the call has ended
    const out = { ...(lab.last || {}), ...(st ? pick(st) : {}) };
    // Concealment and gaps from the samples.
    // From half a second after audio starts: until then the jitter buffer
    // fills, which the set-up time already counts.
    const first = lab.samples.find((s) => s.total > 0);
    let ss = first ? lab.samples.filter((s) => s.total > 0 && s.at >= first.at + 500) : [];
    // Up to the last packet: a peer whose hang-up is lost (a frozen
    // signalling connection) leaves this side concealing silence until it
    // notices, which is not audio the path lost.
    let last = ss.length - 1;
    while (last > 0 && ss[last].packets === ss[last - 1].packets) last--;
    ss = ss.slice(0, last + 1);
    // The recording likewise: what was played after the last packet is
    // silence the path did not cause.
    const end = ss.length ? ss[ss.length - 1].at + 100 : Infinity;
    const chunks = lab.chunks.filter((c) => c.at <= end).map((c) => c.data);
    if (ss.length > 1) {
      const a = ss[0], b = ss[ss.length - 1];
      out.concealed_pct = b.total > a.total ? (100 * (b.concealed - a.concealed)) / (b.total - a.total) : 0;
      out.jitter_buffer_ms = b.jbCount ? (1000 * b.jbDelay) / b.jbCount : 0;
      let run = 0, longest = 0;
      for (let i = 1; i < ss.length; i++) {
        const dt = ss[i].total - ss[i - 1].total, dc = ss[i].concealed - ss[i - 1].concealed;
        if (dt > 0 && dc / dt > 0.5) run += ss[i].at - ss[i - 1].at;
        else run = 0;
        longest = Math.max(longest, run);
      }
      out.longest_gap_ms = longest;
    }
    // The recording as 16-bit PCM, base64.
    let n = 0;
    for (const c of chunks) n += c.length;
    const pcm = new Int16Array(n);
    let i = 0;
    for (const c of chunks) for (const x of c) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(x * 32767)));
    const bytes = new Uint8Array(pcm.buffer);
    let bin = "";
    for (let j = 0; j < bytes.length; j += 0x8000) bin += String.fromCharCode(...bytes.subarray(j, j + 0x8000));
    out.audio = btoa(bin);
    out.rate = lab.rate;
    return out;
  };

  function pick(st) {
    return { path: st.path, setup_ms: st.setupMs, packets_received: st.packetsReceived, packets_lost: st.packetsLost, rtt_ms: st.rttMs };
  }

  // Keep the last statistics of the call while it runs: once it ends,
  // parleyCalls.stats() has nothing.
  setInterval(async () => {
    const st = await globalThis.parleyCalls?.stats?.();
    if (st) lab.last = pick(st);
  }, 250);
})();
