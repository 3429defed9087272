// The audio of a call through the server's tunnel (tier 2): the browser
// brings the codec, the Go core (parley.openTunnel) the rest — SFrame, the
// packets with their redundancy, the jitter buffer and the carriers.
//
//   microphone → AudioContext (48 kHz) → capture worklet (20 ms blocks of
//   PCM) → WebCodecs AudioEncoder (Opus) → TunnelCall.send
//
//   TunnelHandlers.play (one frame every 20 ms, from the jitter buffer) →
//   WebCodecs AudioDecoder → playout worklet (a small buffer) → speakers
//
// WebCodecs: https://www.w3.org/TR/webcodecs/ and its Opus registration,
// https://www.w3.org/TR/webcodecs-opus-codec-registration/ (packets
// without Ogg framing, which is what the CLI sends and records).

import type { FrameStatus, TunnelCall, TunnelHandlers } from "./api";

/** The tunnel's audio: 48 kHz mono in 20 ms frames. */
const sampleRate = 48_000;
const frameSamples = 960;
/** The encoder's bitrate until the tunnel's sender chooses one. */
const startBitrate = 24_000;

/** The two worklets, as one module loaded from a Blob URL so that the
 * build stays one app.js. The capture worklet hands the page 20 ms
 * blocks; the playout worklet plays what the page gives it, starting
 * after prebuffer samples and after each underrun (to absorb the jitter
 * between the Go playout clock and the audio clock), dropping the oldest
 * beyond maxBuffer (so that the delay cannot grow), and reports the
 * energy it played as WebRTC's totalAudioEnergy counts it (the sum of
 * each sample's square times its duration). */
const worklets = `
class Capture extends AudioWorkletProcessor {
  constructor() { super(); this.block = new Float32Array(${frameSamples}); this.n = 0; }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      this.block[this.n++] = ch[i];
      if (this.n === this.block.length) {
        this.port.postMessage(this.block, [this.block.buffer]);
        this.block = new Float32Array(${frameSamples});
        this.n = 0;
      }
    }
    return true;
  }
}
class Playout extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; this.offset = 0; this.buffered = 0; this.playing = false;
    this.prebuffer = ${frameSamples * 2}; this.maxBuffer = ${frameSamples * 10};
    this.energy = 0; this.peak = 0; this.underruns = 0; this.dropped = 0; this.samples = 0; this.lastReport = 0;
    this.port.onmessage = (e) => {
      this.queue.push(e.data); this.buffered += e.data.length;
      while (this.buffered - this.offset > this.maxBuffer && this.queue.length > 1) {
        const old = this.queue.shift(); this.buffered -= old.length; this.dropped += old.length;
      }
    };
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.buffered - this.offset >= this.prebuffer) this.playing = true;
    for (let i = 0; i < out.length; i++) {
      if (!this.playing || this.queue.length === 0) { out[i] = 0; continue; }
      const b = this.queue[0];
      const x = b[this.offset++];
      out[i] = x; this.energy += x * x / sampleRate; this.peak = Math.max(this.peak, Math.abs(x)); this.samples++;
      if (this.offset === b.length) {
        this.queue.shift(); this.buffered -= b.length; this.offset = 0;
        if (this.queue.length === 0) { this.playing = false; this.underruns++; }
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (currentTime - this.lastReport >= 0.25) {
      this.lastReport = currentTime;
      this.port.postMessage({ energy: this.energy, level: this.peak, samples: this.samples, underruns: this.underruns, dropped: this.dropped });
      this.peak = 0;
    }
    return true;
  }
}
registerProcessor("parley-capture", Capture);
registerProcessor("parley-playout", Playout);
`;

/** What the audio side of a tunnel call did. */
export interface TunnelAudioStats {
  framesSent: number; // to the tunnel, the empty silence frames included
  framesDecoded: number; // decoded and handed to the playout
  framesSilent: number; // concealed slots and the sender's silence, played as zeros
  encodeErrors: number;
  decodeErrors: number;
  /** What reached the speakers: the sum of each sample's square times its
   * duration (as WebRTC's totalAudioEnergy), and the last quarter
   * second's peak, 0..1. */
  energy: number;
  level: number;
  secondsPlayed: number;
  underruns: number; // the playout ran dry (frames came later than the audio clock asked)
  secondsDropped: number; // audio dropped unplayed: more came than the playout holds
}

/** The codec side of a tunnel call: open it with the microphone, pass its
 * handlers to parley.openTunnel, then attach the TunnelCall. */
export class TunnelAudio {
  private call: TunnelCall | null = null;
  private muted = false;
  private bitrate = startBitrate;
  private encoder!: AudioEncoder;
  private decoder!: AudioDecoder;
  /** The decoder's pending work in order: a frame being decoded, or a
   * silent slot that must wait for the frames before it. */
  private order: ("frame" | "silence")[] = [];
  private ts = 0; // the next decoded chunk's timestamp, µs
  private blocks = 0; // captured so far: the clock of the encoder's timestamps
  private closed = false;
  private st: TunnelAudioStats = {
    framesSent: 0,
    framesDecoded: 0,
    framesSilent: 0,
    encodeErrors: 0,
    decodeErrors: 0,
    energy: 0,
    level: 0,
    secondsPlayed: 0,
    underruns: 0,
    secondsDropped: 0,
  };

  private constructor(
    private ctx: AudioContext,
    private playout: AudioWorkletNode,
    private nodes: AudioNode[],
  ) {
    this.newEncoder();
    this.newDecoder();
    playout.port.onmessage = (e: MessageEvent<{ energy: number; level: number; samples: number; underruns: number; dropped: number }>) => {
      const m = e.data;
      this.st.energy = m.energy;
      this.st.level = m.level;
      this.st.secondsPlayed = m.samples / sampleRate;
      this.st.underruns = m.underruns;
      this.st.secondsDropped = m.dropped / sampleRate;
    };
  }

  /** Starts capturing mic and the (silent until frames come) playout.
   * Throws when the browser cannot encode or decode Opus. */
  static async open(mic: MediaStream): Promise<TunnelAudio> {
    if (typeof AudioEncoder === "undefined" || typeof AudioDecoder === "undefined") {
      throw new Error("this browser has no WebCodecs audio, which calls through the server need");
    }
    const enc = await AudioEncoder.isConfigSupported(encoderConfig(startBitrate));
    const dec = await AudioDecoder.isConfigSupported(decoderConfig);
    if (!enc.supported || !dec.supported) throw new Error("this browser cannot encode and decode Opus (WebCodecs)");
    const ctx = new AudioContext({ sampleRate, latencyHint: "interactive" });
    try {
      const url = URL.createObjectURL(new Blob([worklets], { type: "text/javascript" }));
      try {
        await ctx.audioWorklet.addModule(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      const source = ctx.createMediaStreamSource(mic);
      const capture = new AudioWorkletNode(ctx, "parley-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        channelCount: 1,
        channelCountMode: "explicit",
      });
      const playout = new AudioWorkletNode(ctx, "parley-playout", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
      source.connect(capture);
      // The capture worklet writes nothing to its output; connected, the
      // graph runs it whether or not the browser pulls output-less nodes.
      capture.connect(ctx.destination);
      playout.connect(ctx.destination);
      const a = new TunnelAudio(ctx, playout, [source, capture, playout]);
      capture.port.onmessage = (e: MessageEvent<Float32Array<ArrayBuffer>>) => a.captured(e.data);
      // Without a user gesture the context may start suspended; the
      // accept or call click counts, and resume asks again.
      void ctx.resume().catch(() => {});
      return a;
    } catch (e) {
      void ctx.close().catch(() => {});
      throw e;
    }
  }

  /** The handlers for parley.openTunnel: the frames to play, plus the
   * peer's comings and goings, the first audio and each frame played
   * (not concealed), for the call. */
  handlers(on: { peer(present: boolean): void; audio(): void; resume?(): boolean; played?(): void }): TunnelHandlers {
    return {
      play: (frame, status) => {
        if (status !== "concealed") on.played?.();
        this.play(frame, status);
      },
      peer: (present) => on.peer(present),
      audio: () => on.audio(),
      resume: () => on.resume?.() ?? true,
    };
  }

  /** From now on the encoded frames go to call. */
  attach(call: TunnelCall): void {
    this.call = call;
  }

  /** From now on nothing is sent: the call's audio goes another way. */
  detach(): void {
    this.call = null;
  }

  /** Muted, the call goes on sending one frame per 20 ms, empty: the
   * tunnel's "sender's silence", which the other side plays as silence
   * without taking it for loss. The microphone's audio is not encoded. */
  setMuted(muted: boolean): void {
    this.muted = muted;
  }

  /** Follows the bitrate the tunnel's sender chooses for the path (it
   * lowers it on a slow path). */
  setBitrate(bitrate: number): void {
    if (!bitrate || bitrate === this.bitrate || this.encoder.state !== "configured") return;
    this.bitrate = bitrate;
    try {
      this.encoder.configure(encoderConfig(bitrate));
    } catch (e) {
      console.warn("parley: the Opus encoder refused a bitrate of", bitrate, e);
    }
  }

  stats(): TunnelAudioStats {
    return { ...this.st };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.call = null;
    for (const c of [this.encoder, this.decoder]) {
      try {
        c.close();
      } catch {
        // already closed after an error
      }
    }
    this.nodes.forEach((n) => n.disconnect());
    void this.ctx.close().catch(() => {});
  }

  // --- sending ---

  private newEncoder(): void {
    this.encoder = new AudioEncoder({
      output: (chunk) => {
        const frame = new Uint8Array(chunk.byteLength);
        chunk.copyTo(frame);
        this.sendFrame(frame);
      },
      error: (e) => {
        // An error closes the encoder (WebCodecs, "close
        // AudioEncoder"): a new one takes the next blocks.
        this.st.encodeErrors++;
        console.warn("parley: the Opus encoder failed:", e);
        if (!this.closed) this.newEncoder();
      },
    });
    this.encoder.configure(encoderConfig(this.bitrate));
  }

  private captured(block: Float32Array<ArrayBuffer>): void {
    const timestamp = Math.round((this.blocks++ * 1e6 * frameSamples) / sampleRate);
    if (this.closed || !this.call) return;
    if (this.muted || this.encoder.state !== "configured") {
      // Silence keeps the other side's playout in step.
      this.sendFrame(new Uint8Array(0));
      return;
    }
    const data = new AudioData({
      format: "f32-planar",
      sampleRate,
      numberOfFrames: block.length,
      numberOfChannels: 1,
      timestamp,
      data: block,
    });
    this.encoder.encode(data);
    data.close();
  }

  private sendFrame(frame: Uint8Array): void {
    if (this.closed || !this.call) return;
    this.st.framesSent++;
    this.call.send(frame);
  }

  // --- playing ---

  private newDecoder(): void {
    this.decoder = new AudioDecoder({
      output: (data) => this.decoded(data),
      error: (e) => {
        // A decode error closes the decoder (WebCodecs, "close
        // AudioDecoder"): the frames it held become silence, and a
        // new one takes the next frames.
        this.st.decodeErrors++;
        console.warn("parley: the Opus decoder failed:", e);
        this.order = this.order.map(() => "silence");
        this.flushSilence();
        if (!this.closed) this.newDecoder();
      },
    });
    this.decoder.configure(decoderConfig);
  }

  private play(frame: Uint8Array | null, status: FrameStatus): void {
    if (this.closed) return;
    if (status === "concealed" || !frame || frame.length === 0) {
      // No frame: play 20 ms of silence. WebCodecs has no way to ask
      // the Opus decoder for its packet loss concealment, so a lost
      // frame is a short gap rather than an interpolation.
      this.order.push("silence");
      this.flushSilence();
      return;
    }
    if (this.decoder.state !== "configured") {
      this.order.push("silence");
      this.flushSilence();
      return;
    }
    try {
      this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.ts, data: frame }));
      this.order.push("frame");
    } catch (e) {
      console.warn("parley: an Opus frame could not be decoded:", e);
      this.order.push("silence");
      this.flushSilence();
    }
    this.ts += (frameSamples * 1e6) / sampleRate;
  }

  private decoded(data: AudioData): void {
    try {
      if (this.closed) return;
      const pcm = new Float32Array(data.numberOfFrames);
      data.copyTo(pcm, { planeIndex: 0, format: "f32-planar" });
      if (this.order[0] === "frame") this.order.shift();
      this.st.framesDecoded++;
      this.playout.port.postMessage(pcm, [pcm.buffer]);
      this.flushSilence();
    } finally {
      data.close();
    }
  }

  /** Plays the silent slots at the head of the order. */
  private flushSilence(): void {
    while (this.order[0] === "silence") {
      this.order.shift();
      this.st.framesSilent++;
      const pcm = new Float32Array(frameSamples);
      this.playout.port.postMessage(pcm, [pcm.buffer]);
    }
  }
}

function encoderConfig(bitrate: number): AudioEncoderConfig {
  return {
    codec: "opus",
    sampleRate,
    numberOfChannels: 1,
    bitrate,
    opus: { frameDuration: (frameSamples * 1e6) / sampleRate, complexity: 5 },
  } as AudioEncoderConfig;
}

const decoderConfig: AudioDecoderConfig = { codec: "opus", sampleRate, numberOfChannels: 1 };
