// Retell's web client 1.x (npm retell-client-js-sdk@1.x), unchanged, talking to a Voxline server.
//
// ./vendor/retell-client-js-sdk.js is an ES module bundle of the npm package, built (not committed)
// by scripts/build-retell-client-v1. The page is served by Voxline at /examples/retell-client-v1/.
//
// For tests, window.retellExample exposes the client, the event log and audio statistics.

const SAMPLE_RATE = 24000;
const KEY_STORAGE = "voxline.example.apiKey"; // sessionStorage only: gone when the tab closes
const AGENT_STORAGE = "voxline.example.agentId";

const $ = (id) => document.getElementById(id);
const form = $("call-form");
const keyInput = $("api-key");
const agentInput = $("agent-id");
const startButton = $("start");
const stopButton = $("stop");
const statusLine = $("status");
const transcriptBox = $("transcript");
const eventList = $("events");

const state = {
  client: null,
  callId: null,
  /** Every client event except the per-render-quantum `audio` ones: {at (ms since page load), type, detail}. */
  events: [],
  /** `audio` events (the samples the client plays, 128 per event in Chrome): counts and the peak. */
  audio: { events: 0, nonSilentEvents: 0, peak: 0 },
  /** The last `update` event's transcript: [{role, content}]. */
  transcript: [],
};
window.retellExample = state;

function setStatus(text, kind = "idle") {
  statusLine.textContent = text;
  statusLine.dataset.state = kind;
}

function logEvent(type, detail) {
  const entry = { at: Math.round(performance.now()), type, detail: detail ?? null };
  state.events.push(entry);
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = `${(entry.at / 1000).toFixed(1)} s`;
  item.append(time, detail === undefined ? type : `${type} ${JSON.stringify(detail)}`);
  eventList.append(item);
  eventList.scrollTop = eventList.scrollHeight;
}

function showTranscript(transcript) {
  state.transcript = transcript;
  transcriptBox.replaceChildren(
    ...transcript.map(({ role, content }) => {
      const line = document.createElement("p");
      line.className = role === "agent" ? "agent" : "user";
      const who = document.createElement("b");
      who.textContent = role === "agent" ? "Agent: " : "You: ";
      line.append(who, content);
      return line;
    }),
  );
  transcriptBox.scrollTop = transcriptBox.scrollHeight;
}

/** Peak of one chunk of PCM16LE samples, 0..1. */
function peakOf(bytes) {
  const samples = new Int16Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 2));
  let peak = 0;
  for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
  return peak / 32768;
}

function setCalling(calling) {
  startButton.disabled = calling;
  stopButton.disabled = !calling;
  keyInput.disabled = calling;
  agentInput.disabled = calling;
}

/**
 * The 1.x client captures and plays through one AudioWorklet, which runs only while its
 * AudioContext is "running"; it calls resume() once. A context the browser suspends (no user
 * gesture yet, audio device busy) would leave the call silent both ways, so resume it again.
 */
function keepAudioRunning(client) {
  let tries = 0;
  const check = () => {
    const context = client.audioContext;
    state.audioContextState = context?.state ?? null;
    if (!context || context.state === "closed" || tries++ > 50) return;
    if (context.state === "suspended") context.resume().catch(() => {});
    if (context.state !== "running") setTimeout(check, 100);
  };
  check();
}

function createClient(RetellWebClient) {
  // The 1.x client appends the call id to its custom endpoint, which must therefore end with "/".
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new RetellWebClient(`${scheme}://${location.host}/audio-websocket/`);

  client.on("conversationStarted", () => {
    logEvent("conversationStarted");
    setStatus(`In a call (${state.callId}) — speak now.`, "live");
    keepAudioRunning(client);
  });
  client.on("conversationEnded", ({ code, reason } = {}) => {
    logEvent("conversationEnded", { code, reason });
    setStatus(`Call ended (close code ${code}${reason ? `, ${reason}` : ""}).`);
    setCalling(false);
  });
  client.on("agentStartTalking", () => logEvent("agentStartTalking"));
  client.on("agentStopTalking", () => logEvent("agentStopTalking"));
  client.on("update", (update) => {
    const turns = update.transcript ?? [];
    const last = turns.at(-1);
    logEvent("update", { turns: turns.length, last: last ? `${last.role}: ${last.content}`.slice(0, 100) : null });
    showTranscript(turns);
  });
  client.on("metadata", (event) => logEvent("metadata", event.metadata ?? event));
  client.on("audio", (audio) => {
    // The samples being played right now (silence included): too many to log one by one.
    const peak = peakOf(audio);
    state.audio.events += 1;
    if (peak > 0.01) {
      if (state.audio.nonSilentEvents === 0) logEvent("audio", { firstNonSilentPeak: Number(peak.toFixed(3)) });
      state.audio.nonSilentEvents += 1;
    }
    state.audio.peak = Math.max(state.audio.peak, peak);
  });
  // Not in the 1.x README, but emitted: the client's own ping/pong watchdog.
  client.on("disconnect", () => logEvent("disconnect"));
  client.on("reconnect", () => logEvent("reconnect"));
  client.on("error", (error) => {
    // 1.x passes the WebSocket error event's `.error`, which browsers leave undefined.
    logEvent("error", error === undefined ? null : String(error));
    setStatus(`Error: ${error ?? "the connection failed"}`, "error");
    setCalling(false);
  });
  return client;
}

/**
 * Register a call. In a real app this is YOUR backend's job: the browser asks your server, your
 * server calls POST /register-call with the API key (which never reaches the browser) and returns
 * the call id. This example calls Voxline directly with a key you paste, to stay self-contained.
 */
async function registerCall(apiKey, agentId) {
  const response = await fetch("/register-call", {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      agent_id: agentId,
      audio_websocket_protocol: "web",
      audio_encoding: "s16le",
      sample_rate: SAMPLE_RATE,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `register-call answered ${response.status}`);
  return body;
}

async function start(event) {
  event.preventDefault();
  const apiKey = keyInput.value.trim();
  const agentId = agentInput.value.trim();
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  sessionStorage.setItem(AGENT_STORAGE, agentId);
  setCalling(true);
  setStatus("Registering the call…");
  try {
    const call = await registerCall(apiKey, agentId);
    state.callId = call.call_id;
    logEvent("registered", { call_id: call.call_id, sample_rate: call.sample_rate });
    setStatus("Connecting…");
    showTranscript([]);
    await state.client.startConversation({
      callId: call.call_id,
      sampleRate: call.sample_rate ?? SAMPLE_RATE,
      enableUpdate: true, // without it the server sends no `update` events (no transcript)
    });
  } catch (error) {
    logEvent("error", String(error.message ?? error));
    setStatus(`Error: ${error.message ?? error}`, "error");
    setCalling(false);
  }
}

function stop() {
  logEvent("stopConversation");
  state.client?.stopConversation();
  // conversationEnded follows once the socket has closed.
}

keyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
agentInput.value = sessionStorage.getItem(AGENT_STORAGE) ?? "";
form.addEventListener("submit", start);
stopButton.addEventListener("click", stop);

try {
  const { RetellWebClient } = await import("./vendor/retell-client-js-sdk.js");
  state.client = createClient(RetellWebClient);
  startButton.disabled = false;
  setStatus("Ready: enter an API key and an agent id, then start a call.");
} catch (error) {
  setStatus(
    "The client bundle ./vendor/retell-client-js-sdk.js is missing: run scripts/build-retell-client-v1, then reload.",
    "error",
  );
  console.error(error);
}
