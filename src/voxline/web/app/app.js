// The talk page: sign in with an API key, pick an agent, talk to it through Voxline's web client.
// The key lives in this tab's sessionStorage only (never in a URL). For tests and diagnostics the
// current call's client is `window.voxline` (see /sdk/voxline-web-client.js for `stats`); a
// `voxline-client` event on window hands it over before the call starts, and
// `window.voxlineRawAudio = true` turns on its `audio` events.

import { VoxlineWebClient } from "/sdk/voxline-web-client.js";

const KEY_STORAGE = "voxline.apiKey";
const USER_SPEAKING_HOLD_MS = 1500;
const USER_SPEAKING_LEVEL = 0.02; // microphone RMS (after echo cancellation) that counts as speech

const $ = (id) => document.getElementById(id);
const ui = {
  signIn: $("sign-in"),
  apiKey: $("api-key"),
  signOut: $("sign-out"),
  error: $("error"),
  talk: $("talk"),
  agent: $("agent"),
  talkButton: $("talk-button"),
  hangUp: $("hang-up"),
  status: $("status"),
  agentIndicator: $("agent-indicator"),
  userIndicator: $("user-indicator"),
  transcript: $("transcript"),
  callLink: $("call-link"),
  callId: $("call-id"),
  consoleLink: $("console-link"),
};

/** @type {VoxlineWebClient|null} */
let client = null;
let userQuietTimer = 0;
let levelTimer = 0;
let lastUserText = "";

// --- REST API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Call the Voxline REST API with the signed-in key. */
async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${sessionStorage.getItem(KEY_STORAGE)}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.message ?? `${method} ${path}: ${response.status}`);
  return data;
}

// --- Sign in / out --------------------------------------------------------------------------

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function showSignIn() {
  ui.signIn.hidden = false;
  ui.talk.hidden = true;
  ui.signOut.hidden = true;
  ui.apiKey.focus();
}

async function showTalk() {
  ui.signIn.hidden = true;
  ui.signOut.hidden = false;
  try {
    const agents = await api("GET", "/list-agents");
    ui.agent.replaceChildren(
      ...agents.map((agent) => new Option(agent.agent_name || agent.agent_id, agent.agent_id)),
    );
    ui.talkButton.disabled = agents.length === 0;
    if (agents.length === 0) setStatus("No agents yet: create one with the REST API.");
    ui.talk.hidden = false;
  } catch (err) {
    if (err.status === 401) {
      signOut();
      showError("That API key was refused.");
    } else showError(err.message);
  }
}

function signOut() {
  client?.stopCall();
  sessionStorage.removeItem(KEY_STORAGE);
  ui.apiKey.value = "";
  showSignIn();
}

ui.signIn.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.apiKey.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.apiKey.value = "";
  showError("");
  showTalk();
});

ui.signOut.addEventListener("click", signOut);

// --- The call -------------------------------------------------------------------------------

function setStatus(text) {
  ui.status.textContent = text;
}

function setSpeaking(indicator, speaking) {
  indicator.dataset.speaking = String(speaking);
}

function setInCall(inCall) {
  ui.talkButton.hidden = inCall;
  ui.hangUp.hidden = !inCall;
  ui.agent.disabled = inCall;
}

/** Render the whole live transcript from an `update` event. */
function renderTranscript(transcript) {
  ui.transcript.replaceChildren(
    ...transcript.map(({ role, content }) => {
      const item = document.createElement("li");
      item.dataset.role = role;
      const label = document.createElement("span");
      label.className = "role";
      label.textContent = role === "agent" ? "Agent" : "You";
      item.append(label, document.createTextNode(content));
      return item;
    }),
  );
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

/** Light the caller's indicator for a moment (unless the agent has the floor). */
function userActive() {
  if (client?.isAgentTalking) return;
  setSpeaking(ui.userIndicator, true);
  clearTimeout(userQuietTimer);
  userQuietTimer = setTimeout(() => setSpeaking(ui.userIndicator, false), USER_SPEAKING_HOLD_MS);
}

/** The caller counts as speaking while their last utterance grows, the floor turns to them, or
 * the microphone is loud (polled every 100 ms). */
function noteUserActivity(update) {
  const last = update.transcript.at(-1);
  const text = last?.role === "user" ? last.content : "";
  if ((text && text !== lastUserText) || update.turntaking === "user_turn") userActive();
  lastUserText = text;
}

function watchMicrophone() {
  clearInterval(levelTimer);
  levelTimer = setInterval(() => {
    if (client && !client.isMuted && client.stats.inputLevel >= USER_SPEAKING_LEVEL) userActive();
  }, 100);
}

function listen(call) {
  client.on("call_started", () => {
    setStatus("Connected — say hello.");
    watchMicrophone();
  });
  client.on("agent_start_talking", () => {
    setSpeaking(ui.agentIndicator, true);
    setSpeaking(ui.userIndicator, false);
  });
  client.on("agent_stop_talking", () => setSpeaking(ui.agentIndicator, false));
  client.on("update", (update) => {
    renderTranscript(update.transcript ?? []);
    noteUserActivity(update);
  });
  client.on("error", (message) => showError(message));
  client.on("call_ended", (info) => {
    clearInterval(levelTimer);
    setInCall(false);
    setSpeaking(ui.agentIndicator, false);
    setSpeaking(ui.userIndicator, false);
    setStatus(`Call ended (${info?.disconnection_reason ?? "ended"}).`);
    showCallLink(call.call_id);
  });
}

function showCallLink(callId) {
  ui.callId.textContent = callId;
  ui.consoleLink.href = `/console/#/calls/${encodeURIComponent(callId)}`;
  ui.callLink.hidden = false;
}

async function talk() {
  showError("");
  ui.transcript.replaceChildren();
  ui.callLink.hidden = true;
  lastUserText = "";
  setInCall(true);
  setStatus("Creating the call…");
  try {
    const call = await api("POST", "/v3/create-web-call", { agent_id: ui.agent.value });
    client = new VoxlineWebClient({ baseUrl: location.origin });
    window.voxline = client;
    window.dispatchEvent(new CustomEvent("voxline-client", { detail: client }));
    listen(call);
    setStatus("Connecting…");
    await client.startCall({ accessToken: call.access_token, emitRawAudioSamples: window.voxlineRawAudio === true });
    if (!client.stats.callStartedAt) {
      setInCall(false);
      setStatus("The call could not start.");
    }
  } catch (err) {
    setInCall(false);
    setStatus("");
    if (err.status === 401) signOut();
    showError(err.message);
  }
}

ui.talkButton.addEventListener("click", talk);
ui.hangUp.addEventListener("click", () => client?.stopCall());

// --- Start ----------------------------------------------------------------------------------

if (sessionStorage.getItem(KEY_STORAGE)) showTalk();
else showSignIn();
