// Voxline's web client: one ES module, no build step, no dependencies.
//
//   import { VoxlineWebClient } from "/sdk/voxline-web-client.js";
//   const client = new VoxlineWebClient({ baseUrl: location.origin });
//   client.on("update", (u) => console.log(u.transcript));
//   await client.startCall({ accessToken });   // from your backend's POST /v3/create-web-call
//   client.stopCall();
//
// The surface is that of Retell's web client 2.x (`RetellWebClient`), so a front end ports by
// changing its import and passing `baseUrl`. The wire protocol is docs/web-call-websocket.md.
//
// Audio path (decisions):
// - Capture: getUserMedia (echo cancellation, noise suppression, auto gain, mono) -> an AudioWorklet
//   ("voxline-capture", defined at the end of this file) that converts to PCM16LE at the call's sample rate and posts 20 ms frames,
//   sent as binary WebSocket frames once the server has answered `call_started`. The call's rate is
//   `sampleRate` (default 24000, the server's default). The AudioContext is created at that rate
//   when the browser allows it (its own resampler then converts the microphone and the output);
//   otherwise at the device rate, and the worklets resample (box-filter down, linear up).
// - Playback: agent PCM16 frames -> a jitter buffer in an AudioWorklet ("voxline-playback") that
//   starts playing once it holds JITTER_TARGET_MS (60 ms) or a shorter burst has waited that long,
//   and refills to the target after running dry -> a MediaStreamAudioDestinationNode -> an <audio>
//   element (autoplay, `setSinkId(playbackDeviceId)`). Never `audioContext.destination`: Chromium's
//   echo canceller removes <audio> element playback from the microphone reliably, WebAudio output
//   not. The server's `clear` empties the buffer at once.
// - mute(): keeps the socket streaming, but sends silence (zeros) in place of the microphone, so
//   the server's clock and voice activity detection keep running and the call never ends with
//   `error_no_audio_received`.
// - Diagnostics: `client.stats` (framesSent, framesReceived, bufferedMs, underruns, inputLevel, and
//   `performance.now()` stamps: captureStartedAt, callStartedAt, firstAudibleAt[] — the first
//   audible agent sample played after each `agent_start_talking`). With a known moment the caller
//   stopped speaking on the page's clock, `firstAudibleAt` gives the latency heard at the page.
// - Keep-alive: a `{"event_type": "ping"}` every 10 s (the server answers `pong`).

const DEFAULT_SAMPLE_RATE = 24000;
/** Jitter buffer target: agent audio waits until this much is queued before it starts playing. */
export const JITTER_TARGET_MS = 60;
/** A played sample at or above this magnitude (about -40 dBFS) counts as audible. */
export const AUDIBLE_THRESHOLD = 0.01;
const PING_INTERVAL_MS = 10000;

/** Close codes of /web-call-websocket refusals (docs/web-call-websocket.md). */
export const CLOSE_CODES = Object.freeze({
  4001: "refused: bad, expired or already used token, or the call has ended",
  4008: "no valid join message within 10 s",
  4029: "the server's concurrent call limit was reached",
});

/**
 * @typedef {object} StartCallConfig
 * @property {string} accessToken the call's `access_token` from POST /v3/create-web-call
 * @property {number} [sampleRate] the call's sample rate, 8000-48000 (default 24000)
 * @property {string} [captureDeviceId] microphone `deviceId` (see `navigator.mediaDevices.enumerateDevices`)
 * @property {string} [playbackDeviceId] speaker `deviceId`, applied with `HTMLMediaElement.setSinkId`
 * @property {boolean} [emitRawAudioSamples] emit `audio` events with the agent samples as played
 */

/**
 * @typedef {object} CallStats
 * @property {number} framesSent binary frames (20 ms) sent to the server
 * @property {number} framesReceived binary frames of agent audio received
 * @property {number} bufferedMs agent audio waiting in the jitter buffer (updated every ~50 ms)
 * @property {number} underruns times the buffer ran dry while the agent was talking
 * @property {number} inputLevel RMS (0-1) of the last 20 ms microphone frame, after the browser's
 *   echo cancellation (what the server hears, unless muted); for level meters
 * @property {number|null} captureStartedAt `performance.now()` when the microphone started
 *   (getUserMedia resolved; the capture graph is wired right after)
 * @property {number|null} callStartedAt `performance.now()` of the server's `call_started`
 * @property {number[]} firstAudibleAt `performance.now()` of the first audible agent sample played
 *   after each `agent_start_talking`, one entry per agent turn that made a sound (the worklet's
 *   audio clock mapped to the page's clock with `AudioContext.getOutputTimestamp()`, so it
 *   includes the output latency the browser reports)
 * @property {number} sampleRate the call's sample rate
 * @property {number} contextSampleRate the AudioContext's rate
 */

/** A minimal event emitter in the style of Node's EventEmitter (what Retell's client extends). */
export class Emitter {
  #listeners = new Map();

  /** @param {string} event @param {(...args: any[]) => void} fn @returns {this} */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, []);
    this.#listeners.get(event).push(fn);
    return this;
  }

  /** @param {string} event @param {(...args: any[]) => void} fn @returns {this} */
  off(event, fn) {
    const list = this.#listeners.get(event);
    if (list) this.#listeners.set(event, list.filter((f) => f !== fn && f.listener !== fn));
    return this;
  }

  /** @param {string} event @param {(...args: any[]) => void} fn @returns {this} */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  /** @param {string} event @param {...any} args @returns {boolean} whether anyone listened */
  emit(event, ...args) {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const fn of [...list]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`voxline: a "${event}" listener threw`, err);
      }
    }
    return true;
  }

  /** @param {string} [event] @returns {this} */
  removeAllListeners(event) {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }
}

/**
 * Talk with a Voxline agent from the browser.
 *
 * Events (those of Retell's web client 2.x):
 * - `call_started` — the server answered the join; audio flows both ways.
 * - `call_ready` — agent audio can play (the playback graph and <audio> element are running).
 * - `call_ended` `({code, reason, disconnection_reason})` — the server ended the call, the socket
 *   closed, or `stopCall()` was called. Emitted once, only for a call that started.
 * - `agent_start_talking` / `agent_stop_talking` — `isAgentTalking` toggles with them.
 * - `update` `(event)` — the server's whole `update` object (`transcript: [{role, content}]`…).
 * - `metadata` `(event)` — the server's whole `metadata` object.
 * - `audio` `(Float32Array)` — agent samples as played (context rate, ~20 ms), only with
 *   `emitRawAudioSamples`.
 * - `error` `("Error starting call")` — the call could not start; `stopCall()` follows.
 */
export class VoxlineWebClient extends Emitter {
  /** Whether the agent is talking (between `agent_start_talking` and `agent_stop_talking`). */
  isAgentTalking = false;

  /** @type {CallStats} */
  stats = VoxlineWebClient.#freshStats();

  /** @type {HTMLAudioElement|null} the <audio> element agent speech plays through (made by `startCall`) */
  audioElement = null;

  #socketUrl;
  /** @type {WebSocket|null} */ #ws = null;
  /** @type {AudioContext|null} */ #ctx = null;
  /** @type {MediaStream|null} */ #mic = null;
  /** @type {AudioWorkletNode|null} */ #capture = null;
  /** @type {AudioWorkletNode|null} */ #playback = null;
  #started = false;
  #ended = false;
  #muted = false;
  #emitRaw = false;
  #pingTimer = 0;
  /** @type {((err: Error) => void)|null} */ #abortJoin = null;

  /**
   * @param {{baseUrl?: string}} [options] the Voxline server's base URL (default `location.origin`;
   *   a path prefix is kept); the socket is `ws(s)://<host>[/prefix]/web-call-websocket`, wss for https.
   */
  constructor({ baseUrl } = {}) {
    super();
    const base = String(baseUrl ?? globalThis.location?.origin);
    const url = new URL("web-call-websocket", base.endsWith("/") ? base : `${base}/`);
    url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
    this.#socketUrl = url.href;
  }

  /** The WebSocket URL this client joins calls on. */
  get socketUrl() {
    return this.#socketUrl;
  }

  static #freshStats() {
    return {
      framesSent: 0,
      framesReceived: 0,
      bufferedMs: 0,
      underruns: 0,
      inputLevel: 0,
      captureStartedAt: null,
      callStartedAt: null,
      firstAudibleAt: [],
      sampleRate: 0,
      contextSampleRate: 0,
    };
  }

  /**
   * Join a call: microphone, audio graph, then the socket's join message. Resolves once the
   * server has answered `call_started`. On failure (no microphone, refused join: see CLOSE_CODES,
   * unreachable server) emits `error` ("Error starting call", details on the console) and stops;
   * it does not throw.
   * @param {StartCallConfig} config
   * @returns {Promise<void>}
   */
  async startCall({ accessToken, sampleRate, captureDeviceId, playbackDeviceId, emitRawAudioSamples } = {}) {
    const rate = sampleRate ?? DEFAULT_SAMPLE_RATE;
    this.#reset(rate, Boolean(emitRawAudioSamples));
    try {
      await this.#setUpAudio(rate, captureDeviceId, playbackDeviceId);
      await this.#join(accessToken, rate);
    } catch (err) {
      if (!this.#ended) {
        // (not when stopCall() was called while starting: that is a hang-up, not an error)
        console.error("voxline: Error starting call", err);
        this.emit("error", "Error starting call");
      }
      this.stopCall();
    }
  }

  /**
   * Resume audio output when the browser's autoplay policy held it back (call it from a click).
   * @returns {Promise<void>}
   */
  async startAudioPlayback() {
    await this.#ctx?.resume();
    await this.audioElement?.play();
  }

  /** Hang up: closes the socket (the call ends as `user_hangup`), stops the microphone, closes
   * the audio context. Safe to call any number of times. */
  stopCall() {
    this.#finish({ code: 1000, reason: "user_hangup", disconnection_reason: "user_hangup" }, 0);
  }

  /** Send silence instead of the microphone (the socket keeps streaming; see the module notes). */
  mute() {
    this.#muted = true;
  }

  /** Send the microphone again after `mute()`. */
  unmute() {
    this.#muted = false;
  }

  /** @returns {boolean} whether `mute()` is in effect */
  get isMuted() {
    return this.#muted;
  }

  #reset(rate, emitRaw) {
    if (this.#ws || this.#ctx) this.stopCall();
    this.#started = false;
    this.#ended = false;
    this.#muted = false;
    this.#emitRaw = emitRaw;
    this.isAgentTalking = false;
    this.stats = VoxlineWebClient.#freshStats();
    this.stats.sampleRate = rate;
  }

  async #setUpAudio(rate, captureDeviceId, playbackDeviceId) {
    this.#mic = await navigator.mediaDevices.getUserMedia({
      audio: {
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
        channelCount: 1,
        ...(captureDeviceId ? { deviceId: { exact: captureDeviceId } } : {}),
      },
    });
    this.stats.captureStartedAt = performance.now();
    try {
      await this.#buildGraph(rate, rate, playbackDeviceId);
    } catch (err) {
      // Firefox refuses a microphone at another rate than the context's: use the device's rate
      // (the worklets then resample).
      if (err?.name !== "NotSupportedError" || this.#ended) throw err;
      await this.#ctx?.close();
      await this.#buildGraph(rate, undefined, playbackDeviceId);
    }
  }

  /** The AudioContext (at `contextRate` when given and allowed), both worklets and the <audio> element. */
  async #buildGraph(rate, contextRate, playbackDeviceId) {
    this.#ctx = this.#createContext(contextRate);
    this.stats.contextSampleRate = this.#ctx.sampleRate;
    await this.#ctx.audioWorklet.addModule(workletModuleUrl());
    if (this.#ended) throw new Error("stopped while starting");
    this.#wireCapture(rate);
    await this.#wirePlayback(rate, playbackDeviceId);
  }

  /** @param {number|undefined} rate */
  #createContext(rate) {
    if (rate === undefined) return new AudioContext({ latencyHint: "interactive" });
    try {
      return new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
    } catch {
      return new AudioContext({ latencyHint: "interactive" });
    }
  }

  #wireCapture(rate) {
    const source = this.#ctx.createMediaStreamSource(this.#mic);
    this.#capture = new AudioWorkletNode(this.#ctx, "voxline-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0, // a sink: processed without being connected to the destination
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: rate },
    });
    this.#capture.port.onmessage = (event) => this.#sendFrame(event.data);
    source.connect(this.#capture);
  }

  async #wirePlayback(rate, playbackDeviceId) {
    this.#playback = new AudioWorkletNode(this.#ctx, "voxline-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: {
        sourceRate: rate,
        targetMs: JITTER_TARGET_MS,
        emitSamples: this.#emitRaw,
        audibleThreshold: AUDIBLE_THRESHOLD,
      },
    });
    this.#playback.port.onmessage = (event) => this.#onPlaybackMessage(event.data);
    const destination = this.#ctx.createMediaStreamDestination();
    this.#playback.connect(destination);
    const audio = new Audio();
    audio.autoplay = true;
    audio.srcObject = destination.stream;
    if (playbackDeviceId && typeof audio.setSinkId === "function") await audio.setSinkId(playbackDeviceId);
    this.audioElement = audio;
    await this.#ctx.resume();
    audio.play().catch((err) => console.warn("voxline: audio playback held back; call startAudioPlayback()", err));
  }

  /** Open the socket, send the join message, resolve on `call_started` (reject on a refusal). */
  #join(accessToken, rate) {
    return new Promise((resolve, reject) => {
      this.#abortJoin = reject;
      const ws = new WebSocket(this.#socketUrl);
      ws.binaryType = "arraybuffer";
      this.#ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ event_type: "join", access_token: accessToken, sample_rate: rate }));
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") return this.#onAgentAudio(event.data);
        const message = JSON.parse(event.data);
        if (message.event_type === "call_started" && !this.#started) {
          this.#onCallStarted();
          resolve();
        } else this.#onServerEvent(message);
      };
      ws.onclose = (event) => {
        if (!this.#started) {
          const meaning = CLOSE_CODES[event.code] ?? "the socket closed";
          reject(new Error(`join refused (${event.code}: ${meaning}) ${event.reason}`.trim()));
          return;
        }
        this.#finish({ code: event.code, reason: event.reason, disconnection_reason: event.reason || null });
      };
      ws.onerror = () => {
        if (!this.#started) reject(new Error(`could not connect to ${this.#socketUrl}`));
      };
    });
  }

  #onCallStarted() {
    this.#started = true;
    this.#abortJoin = null;
    this.stats.callStartedAt = performance.now();
    this.#pingTimer = setInterval(() => this.#sendText({ event_type: "ping" }), PING_INTERVAL_MS);
    this.emit("call_started");
    this.emit("call_ready");
  }

  /** @param {any} message a server event (docs/web-call-websocket.md) */
  #onServerEvent(message) {
    switch (message.event_type) {
      case "agent_start_talking":
      case "agent_stop_talking": {
        this.isAgentTalking = message.event_type === "agent_start_talking";
        this.#playback?.port.postMessage({ type: "talking", value: this.isAgentTalking });
        this.emit(message.event_type);
        break;
      }
      case "update":
      case "metadata":
        this.emit(message.event_type, message);
        break;
      case "clear":
        this.#playback?.port.postMessage({ type: "clear" });
        break;
      case "call_ended":
        // Let the last ~JITTER_TARGET_MS of agent audio (e.g. a goodbye) play out before closing.
        this.#finish(
          { code: 1000, reason: message.disconnection_reason, disconnection_reason: message.disconnection_reason },
          JITTER_TARGET_MS + 60,
        );
        break;
      default:
        break; // pong, and events of later servers
    }
  }

  /** @param {ArrayBuffer} data agent PCM16LE at the call's rate */
  #onAgentAudio(data) {
    this.stats.framesReceived += 1;
    this.#playback?.port.postMessage(data, [data]);
  }

  #onPlaybackMessage(data) {
    if (data.type === "stats") {
      this.stats.bufferedMs = data.bufferedMs;
      this.stats.underruns = data.underruns;
    } else if (data.type === "audible") {
      this.stats.firstAudibleAt.push(this.#contextTimeToPerformance(data.contextTime));
    } else if (data.type === "samples") {
      this.emit("audio", new Float32Array(data.buffer));
    }
  }

  /** Map an AudioContext time to the page's `performance.now()` clock. */
  #contextTimeToPerformance(contextTime) {
    const ctx = this.#ctx;
    const stamp = ctx?.getOutputTimestamp?.();
    if (!stamp || !stamp.performanceTime) return performance.now();
    return stamp.performanceTime + (contextTime - stamp.contextTime) * 1000;
  }

  /** @param {ArrayBuffer} frame 20 ms of PCM16LE microphone audio at the call's rate */
  #sendFrame(frame) {
    this.stats.inputLevel = rms(frame);
    if (!this.#started || this.#ended || this.#ws?.readyState !== WebSocket.OPEN) return;
    this.#ws.send(this.#muted ? new ArrayBuffer(frame.byteLength) : frame);
    this.stats.framesSent += 1;
  }

  #sendText(message) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  /** Tear down once; emits `call_ended` for a call that started. */
  #finish(info, drainMs = 0) {
    if (this.#ended && !this.#ws && !this.#ctx) return;
    const wasLive = this.#started && !this.#ended;
    this.#ended = true;
    clearInterval(this.#pingTimer);
    this.#abortJoin?.(new Error("stopped while joining"));
    this.#abortJoin = null;
    const ws = this.#ws;
    this.#ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      ws.onclose = null;
      ws.close(1000, info.reason ? String(info.reason).slice(0, 120) : undefined);
    }
    this.#mic?.getTracks().forEach((track) => track.stop());
    this.#mic = null;
    this.#capture?.port.postMessage("stop");
    this.#capture?.disconnect();
    this.#capture = null;
    this.#closeAudio(drainMs);
    this.isAgentTalking = false;
    if (wasLive) this.emit("call_ended", info);
  }

  #closeAudio(drainMs) {
    const ctx = this.#ctx;
    const playback = this.#playback;
    const audio = this.audioElement;
    this.#ctx = null;
    this.#playback = null;
    const close = () => {
      playback?.port.postMessage({ type: "stop" });
      if (audio) {
        audio.pause();
        audio.srcObject = null;
      }
      if (ctx && ctx.state !== "closed") ctx.close().catch(() => {});
    };
    if (drainMs > 0) setTimeout(close, drainMs);
    else close();
  }
}

/** @param {ArrayBuffer} frame PCM16LE @returns {number} its RMS level, 0-1 */
function rms(frame) {
  const samples = new Int16Array(frame);
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) / 0x8000 : 0;
}

export default VoxlineWebClient;

// The AudioWorklet processors, in this same module: the function's source text becomes the worklet
// module (a Blob URL), so the client is one file with no build step. It never runs on the main
// thread. A page with a Content-Security-Policy must allow `blob:` scripts for it.
/* global registerProcessor, AudioWorkletProcessor, sampleRate, currentTime */
function workletScope() {
  // AudioWorklet processors of Voxline's web client (loaded by voxline-web-client.js; no build step).
  //
  // - "voxline-capture": microphone (the context's rate) -> PCM16LE mono at the call's rate, posted to
  //   the main thread as 20 ms frames (transferred ArrayBuffers).
  // - "voxline-playback": agent PCM16 frames -> a small jitter buffer -> the node's output (at the
  //   context's rate), with underrun counting, the "first audible sample" mark and optional raw samples.

  const FRAME_MS = 20;

  /**
   * Streaming sample-rate converter for mono Float32 audio. Downsampling averages the input samples
   * that fall within each output period (a box filter, enough against aliasing for speech);
   * upsampling interpolates linearly. Equal rates pass through.
   */
  class Resampler {
    /** @param {number} from @param {number} to */
    constructor(from, to) {
      this.step = from / to; // input samples per output sample
      this.pos = 0; // position of the next output sample, in input samples from the current block's start
      this.last = 0; // last input sample of the previous block (for interpolation across blocks)
      this.acc = 0; // downsampling: running sum and count of the current output period
      this.count = 0;
    }

    /** @param {Float32Array} input @returns {Float32Array} */
    process(input) {
      if (this.step === 1) return input;
      return this.step > 1 ? this.#down(input) : this.#up(input);
    }

    #down(input) {
      const out = new Float32Array(Math.ceil((input.length + this.count) / this.step) + 1);
      let n = 0;
      for (let i = 0; i < input.length; i++) {
        this.acc += input[i];
        this.count += 1;
        this.pos += 1;
        if (this.pos >= this.step) {
          out[n++] = this.acc / this.count;
          this.pos -= this.step;
          this.acc = 0;
          this.count = 0;
        }
      }
      return out.subarray(0, n);
    }

    #up(input) {
      const out = new Float32Array(Math.ceil(input.length / this.step) + 2);
      let n = 0;
      // pos is measured from the sample before this block (index -1 = this.last).
      while (this.pos < input.length) {
        const i = Math.floor(this.pos);
        const frac = this.pos - i;
        const a = i === 0 ? this.last : input[i - 1];
        const b = input[i];
        out[n++] = a + (b - a) * frac;
        this.pos += this.step;
      }
      this.pos -= input.length;
      this.last = input[input.length - 1];
      return out.subarray(0, n);
    }
  }

  class CaptureProcessor extends AudioWorkletProcessor {
    /** @param {{processorOptions: {targetRate: number}}} options */
    constructor(options) {
      super();
      const targetRate = options.processorOptions.targetRate;
      this.resampler = new Resampler(sampleRate, targetRate);
      this.frameLength = Math.round((targetRate * FRAME_MS) / 1000);
      this.frame = new Int16Array(this.frameLength);
      this.filled = 0;
      this.port.onmessage = (event) => {
        if (event.data === "stop") this.stopped = true;
      };
    }

    process(inputs) {
      if (this.stopped) return false;
      const channel = inputs[0] && inputs[0][0];
      if (!channel) return true; // no input connected yet
      const samples = this.resampler.process(channel);
      for (let i = 0; i < samples.length; i++) {
        const s = Math.max(-1, Math.min(1, samples[i]));
        this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        if (this.filled === this.frameLength) {
          const buffer = this.frame.buffer;
          this.port.postMessage(buffer, [buffer]); // detaches this.frame
          this.frame = new Int16Array(this.frameLength);
          this.filled = 0;
        }
      }
      return true;
    }
  }

  class PlaybackProcessor extends AudioWorkletProcessor {
    /**
     * @param {{processorOptions: {sourceRate: number, targetMs: number, emitSamples: boolean,
     *   audibleThreshold: number}}} options
     */
    constructor(options) {
      super();
      const o = options.processorOptions;
      this.resampler = new Resampler(o.sourceRate, sampleRate);
      this.target = Math.round((sampleRate * o.targetMs) / 1000); // samples to hold before (re)starting
      this.emitSamples = o.emitSamples;
      this.threshold = o.audibleThreshold;
      /** @type {Float32Array[]} */
      this.queue = [];
      this.offset = 0; // read position in queue[0]
      this.buffered = 0; // samples queued (at the context's rate)
      this.playing = false;
      this.waitedSince = -1; // currentTime the first queued chunk arrived while not playing
      this.talking = false;
      this.armed = false; // looking for the first audible sample after agent_start_talking
      this.underruns = 0;
      this.outLength = Math.round((sampleRate * FRAME_MS) / 1000);
      this.out = this.emitSamples ? new Float32Array(this.outLength) : null;
      this.outFilled = 0;
      this.lastReport = 0;
      this.port.onmessage = (event) => this.onMessage(event.data);
    }

    onMessage(data) {
      if (data instanceof ArrayBuffer) {
        const pcm = new Int16Array(data);
        const floats = new Float32Array(pcm.length);
        for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 0x8000;
        const samples = this.resampler.process(floats);
        if (samples.length === 0) return;
        this.queue.push(samples.slice());
        this.buffered += samples.length;
        if (!this.playing && this.waitedSince < 0) this.waitedSince = currentTime;
      } else if (data.type === "clear") {
        this.queue = [];
        this.offset = 0;
        this.buffered = 0;
        this.playing = false;
        this.waitedSince = -1;
      } else if (data.type === "talking") {
        this.talking = data.value;
        if (data.value) this.armed = true;
      } else if (data.type === "stop") {
        this.stopped = true;
      }
    }

    /** Start when the jitter buffer holds its target, or when a short burst has waited that long. */
    shouldStart() {
      if (this.buffered === 0) return false;
      if (this.buffered >= this.target) return true;
      return currentTime - this.waitedSince >= this.target / sampleRate;
    }

    process(_inputs, outputs) {
      if (this.stopped) return false;
      const output = outputs[0][0];
      if (!this.playing && this.shouldStart()) {
        this.playing = true;
        this.waitedSince = -1;
      }
      let n = 0;
      if (this.playing) n = this.read(output);
      output.fill(0, n);
      if (this.playing && n < output.length) {
        if (this.talking) this.underruns += 1; // ran dry mid-reply (draining after the reply is normal)
        this.playing = false;
      }
      if (this.armed) this.findAudible(output, n);
      if (this.emitSamples) this.collect(output);
      if (currentTime - this.lastReport >= 0.05) this.report();
      return true;
    }

    /** Copy queued samples into `output`; returns how many. */
    read(output) {
      let n = 0;
      while (n < output.length && this.queue.length > 0) {
        const head = this.queue[0];
        const take = Math.min(output.length - n, head.length - this.offset);
        output.set(head.subarray(this.offset, this.offset + take), n);
        n += take;
        this.offset += take;
        if (this.offset === head.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
      this.buffered -= n;
      return n;
    }

    findAudible(output, n) {
      for (let i = 0; i < n; i++) {
        if (Math.abs(output[i]) >= this.threshold) {
          this.armed = false;
          this.port.postMessage({ type: "audible", contextTime: currentTime + i / sampleRate });
          return;
        }
      }
    }

    collect(output) {
      let i = 0;
      while (i < output.length) {
        const take = Math.min(output.length - i, this.outLength - this.outFilled);
        this.out.set(output.subarray(i, i + take), this.outFilled);
        this.outFilled += take;
        i += take;
        if (this.outFilled === this.outLength) {
          const buffer = this.out.buffer;
          this.port.postMessage({ type: "samples", buffer }, [buffer]); // detaches this.out
          this.out = new Float32Array(this.outLength);
          this.outFilled = 0;
        }
      }
    }

    report() {
      this.lastReport = currentTime;
      this.port.postMessage({
        type: "stats",
        bufferedMs: (this.buffered / sampleRate) * 1000,
        underruns: this.underruns,
      });
    }
  }

  registerProcessor("voxline-capture", CaptureProcessor);
  registerProcessor("voxline-playback", PlaybackProcessor);
}

/** A URL for the worklet module (made once per page). */
let workletUrl = null;
function workletModuleUrl() {
  workletUrl ??= URL.createObjectURL(new Blob([`(${workletScope.toString()})();\n`], { type: "text/javascript" }));
  return workletUrl;
}
