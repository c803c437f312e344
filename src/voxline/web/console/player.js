// The recording: an <audio> element on a blob URL, a waveform (one lane per channel) with a
// playhead, click-to-seek, and a clock other parts (the transcript) can follow.
import { fetchFile } from "./api.js";
import { el } from "./dom.js";

const LANE_COLORS = ["#2f6fdb", "#d9822b"];

/** Min/max of each pixel column of each channel. */
function peaks(buffer, columns) {
  const lanes = [];
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const data = buffer.getChannelData(c);
    const step = data.length / columns;
    const lane = new Float32Array(columns * 2);
    for (let x = 0; x < columns; x++) {
      let lo = 0;
      let hi = 0;
      const end = Math.min(data.length, Math.floor((x + 1) * step));
      for (let i = Math.floor(x * step); i < end; i++) {
        const v = data[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      lane[2 * x] = lo;
      lane[2 * x + 1] = hi;
    }
    lanes.push(lane);
  }
  return lanes;
}

function drawWaveform(canvas, buffer, labels) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const lanes = peaks(buffer, width);
  const laneHeight = height / lanes.length;
  lanes.forEach((lane, index) => {
    const mid = laneHeight * index + laneHeight / 2;
    const scale = laneHeight / 2 - 2;
    ctx.fillStyle = LANE_COLORS[index % LANE_COLORS.length];
    for (let x = 0; x < width; x++) {
      const top = mid - lane[2 * x + 1] * scale;
      const bottom = mid - lane[2 * x] * scale;
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    ctx.fillStyle = "#555";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(labels[index] ?? `channel ${index}`, 4, laneHeight * index + 14);
    if (index > 0) {
      ctx.fillStyle = "#ccc";
      ctx.fillRect(0, laneHeight * index, width, 1);
    }
  });
}

async function decode(blob) {
  const context = new AudioContext();
  try {
    return await context.decodeAudioData(await blob.arrayBuffer());
  } finally {
    context.close();
  }
}

/**
 * Builds the player into `container`; returns null when the call has no recording, else
 * { audio, seek(seconds), onTick(fn), ready }: `onTick(fn)` calls fn(currentTime) on every frame
 * while playing and after every seek; `ready` settles once the files are loaded and drawn.
 * The mixed file plays; the two-channel file, when there is one, draws the caller and agent lanes.
 */
export function renderPlayer(container, call) {
  const playUrl = call.recording_url ?? call.recording_multi_channel_url;
  const waveUrl = call.recording_multi_channel_url ?? call.recording_url;
  if (!playUrl) return null;

  const audio = el("audio", { controls: true, preload: "auto", id: "recording" });
  const canvas = el("canvas", { id: "waveform", width: 1000, height: 160, title: "Click to seek" });
  const playhead = el("div", { class: "playhead", id: "playhead" });
  const wave = el("div", { class: "waveform" }, canvas, playhead);
  const status = el("p", { class: "note", text: "Loading the recording…" });
  const download = el("a", { class: "download", text: "download recording", hidden: true });
  container.append(audio, wave, el("p", { class: "legend" },
    waveUrl === call.recording_multi_channel_url
      ? [el("span", { class: "swatch caller" }), "caller  ", el("span", { class: "swatch agent" }), "agent  "]
      : [],
    download), status);

  const ticks = [];
  let duration = (call.duration_ms ?? 0) / 1000;
  const tick = () => {
    const t = audio.currentTime;
    playhead.style.left = `${duration ? Math.min(100, (100 * t) / duration) : 0}%`;
    for (const fn of ticks) fn(t);
  };
  let frame = 0;
  const loop = () => {
    tick();
    frame = audio.paused ? 0 : requestAnimationFrame(loop);
  };
  audio.addEventListener("play", () => { if (!frame) frame = requestAnimationFrame(loop); });
  for (const name of ["pause", "seeked", "timeupdate", "loadedmetadata"]) audio.addEventListener(name, tick);
  audio.addEventListener("loadedmetadata", () => { if (Number.isFinite(audio.duration)) duration = audio.duration; });

  let pending = null;  // a seek asked for before the audio could take it
  const seek = (seconds) => {
    if (audio.readyState === 0) {
      pending = Math.max(0, seconds);
      return;
    }
    audio.currentTime = Math.max(0, seconds);
    tick();
  };
  audio.addEventListener("loadedmetadata", () => {
    if (pending !== null) seek(pending);
    pending = null;
  });
  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    seek(((event.clientX - box.left) / box.width) * duration);
  });

  const ready = (async () => {
    try {
      const [playBlob, waveBlob] = await Promise.all([
        fetchFile(playUrl),
        waveUrl === playUrl ? null : fetchFile(waveUrl),
      ]);
      audio.src = URL.createObjectURL(playBlob);
      download.href = audio.src;
      download.download = `${call.call_id}.wav`;
      download.hidden = false;
      const buffer = await decode(waveBlob ?? playBlob);
      duration = buffer.duration;
      canvas.width = Math.max(300, Math.round(wave.clientWidth || 1000));
      drawWaveform(canvas, buffer, buffer.numberOfChannels === 2 ? ["caller", "agent"] : ["caller + agent"]);
      canvas.dataset.drawn = "true";
      status.remove();
      tick();
    } catch (error) {
      status.textContent = `Could not load the recording: ${error.message}`;
    }
  })();
  return { audio, seek, onTick: (fn) => ticks.push(fn), ready };
}
