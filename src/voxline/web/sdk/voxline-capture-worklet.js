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
