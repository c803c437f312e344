// One call: header, recording, transcript, latency, analysis, public log.
import { api, fetchFile } from "./api.js";
import { alignByTurn, renderLatencyChart, renderLatencyTable } from "./charts.js";
import { el, formatBool, formatDuration, formatTime, note, section } from "./dom.js";
import { renderPlayer } from "./player.js";

const FINISHED = new Set(["ended", "error", "not_connected"]);

/** Why a stored part is missing: the storage setting, or the call not having ended yet. */
function missing(call, what) {
  if (!FINISHED.has(call.call_status)) return `${what}: not available yet (the call has not ended).`;
  const setting = call.data_storage_setting ?? "everything";
  if (setting !== "everything") return `${what}: not kept for this call (data storage: ${setting}).`;
  return `${what}: not kept for this call.`;
}

function field(label, value, id) {
  return [el("dt", { text: label }), el("dd", { id, text: value ?? "–" })];
}

function header(call) {
  return el("header", { class: "call-header card" },
    el("p", {}, el("a", { href: "#/calls", text: "← all calls" })),
    el("h1", { text: `Call ${call.call_id}` }),
    el("dl", { class: "facts" },
      field("Agent", `${call.agent_name ?? "–"} (${call.agent_id}, version ${call.agent_version})`, "call-agent"),
      field("Status", call.call_status, "call-status"),
      field("Disconnection reason", call.disconnection_reason, "call-reason"),
      field("Start", formatTime(call.start_timestamp)),
      field("End", formatTime(call.end_timestamp)),
      field("Duration", formatDuration(call.duration_ms)),
      field("Data storage", call.data_storage_setting ?? "everything", "call-storage")));
}

// --- transcript --------------------------------------------------------------------------

function collapsible(summary, body, className) {
  let text = body;
  try {
    text = JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    // not JSON: show as is
  }
  return el("details", { class: `item ${className}` }, el("summary", { text: summary }), el("pre", { text }));
}

function utterance(item, words, seek) {
  const content = el("p", { class: "content" });
  if (item.words?.length) {
    item.words.forEach((word, index) => {
      if (index) content.append(" ");
      const span = el("span", {
        class: "word",
        text: word.word ?? "",
        title: Number.isFinite(word.start) ? `${word.start.toFixed(2)} s` : undefined,
        dataset: { start: word.start, end: word.end },
        onclick: Number.isFinite(word.start) ? () => seek?.(word.start) : undefined,
      });
      content.append(span);
      if (Number.isFinite(word.start)) words.push({ start: word.start, end: word.end ?? word.start, span });
    });
  } else {
    content.textContent = item.content;
  }
  const role = el("span", { class: "role", text: item.role });
  return el("div", { class: `item utterance role-${item.role}` }, role, content);
}

function transcriptItem(item, words, seek) {
  switch (item.role) {
    case "agent":
    case "user":
    case "transfer_target":
      return utterance(item, words, seek);
    case "tool_call_invocation":
      return collapsible(`tool call: ${item.name} (${item.tool_call_id})`, item.arguments, "tool-call");
    case "tool_call_result":
      return collapsible(
        `tool result (${item.tool_call_id})${item.successful === false ? " — failed" : ""}`,
        item.content,
        "tool-result");
    case "injected":
      return collapsible(`injected context at ${item.time_sec?.toFixed(1)} s`, item.content, "injected");
    case "node_transition":
      return el("div", { class: "item event", text: `state: ${item.former_node_name} → ${item.new_node_name}` });
    case "dtmf":
      return el("div", { class: "item event", text: `DTMF ${item.digit}` });
    default:
      return el("div", { class: "item event", text: `${item.role}: ${item.content ?? ""}` });
  }
}

/** The word playing at `t` gets the `playing` class. */
function followPlayback(words) {
  let current = null;
  return (t) => {
    const found = words.find((w) => t >= w.start && t < w.end) ?? null;
    if (found === current) return;
    current?.span.classList.remove("playing");
    found?.span.classList.add("playing");
    current = found;
  };
}

function renderTranscript(body, call, player) {
  const items = call.transcript_with_tool_calls ?? call.transcript_object;
  if (!items?.length) {
    body.append(note(missing(call, "Transcript"), "note not-kept"));
    return;
  }
  const words = [];
  const list = el("div", { class: "transcript", id: "transcript" },
    items.map((item) => transcriptItem(item, words, player?.seek)));
  body.append(list);
  player?.onTick(followPlayback(words));
}

// --- analysis, log -------------------------------------------------------------------------

function renderAnalysis(body, call, reload) {
  const analysis = call.call_analysis;
  if (!analysis) {
    const text = FINISHED.has(call.call_status) && (call.data_storage_setting ?? "everything") === "everything"
      ? "Analysis: not ready yet (it arrives a little after the end)."
      : missing(call, "Analysis");
    body.append(note(text), el("button", { type: "button", class: "secondary", text: "Refresh", onclick: reload }));
    return;
  }
  const custom = analysis.custom_analysis_data ?? {};
  body.append(el("dl", { class: "facts", id: "analysis" },
    field("Summary", analysis.call_summary, "analysis-summary"),
    field("User sentiment", analysis.user_sentiment, "analysis-sentiment"),
    field("Successful", formatBool(analysis.call_successful)),
    field("In voicemail", formatBool(analysis.in_voicemail)),
    Object.entries(custom).map(([key, value]) =>
      field(key, typeof value === "string" ? value : JSON.stringify(value)))));
}

async function renderLog(body, call) {
  if (!call.public_log_url) {
    body.append(note(missing(call, "Public log"), "note not-kept"));
    return;
  }
  const pre = el("pre", { class: "log", id: "public-log", text: "Loading…" });
  const link = el("a", { class: "download", id: "log-download", text: "download", hidden: true });
  body.append(el("p", {}, link), pre);
  try {
    const blob = await fetchFile(call.public_log_url);
    pre.textContent = await blob.text();
    link.href = URL.createObjectURL(blob);
    link.download = `${call.call_id}-log.txt`;
    link.hidden = false;
  } catch (error) {
    pre.textContent = `Could not load the log: ${error.message}`;
  }
}

export async function renderCall(root, callId, reload) {
  const call = await api(`/v2/get-call/${encodeURIComponent(callId)}`);
  root.append(header(call));

  const [recording, recordingBody] = section("Recording", "recording");
  const player = renderPlayer(recordingBody, call);
  if (!player) recordingBody.append(note(missing(call, "Recording"), "note not-kept"));

  const [transcript, transcriptBody] = section("Transcript", "transcript-card");
  renderTranscript(transcriptBody, call, player);

  const [latency, latencyBody] = section("Latency", "latency");
  const turns = await api(`/voxline/call-turns/${encodeURIComponent(callId)}`).then((r) => r.turns, () => null);
  const byTurn = alignByTurn(call.latency, turns);
  const chart = renderLatencyChart(byTurn);
  if (chart) {
    latencyBody.append(el("div", { class: "chart-scroll" }, chart), renderLatencyTable(byTurn),
      note(turns?.length
        ? "One group per turn (turn 1 is the greeting): e2e and asr exist only for turns that answer the caller."
        : "Values in the order they were measured: e2e and asr count only turns that answer the caller."));
  } else {
    latencyBody.append(note(FINISHED.has(call.call_status) ? "No latency was measured." : "Not available yet."));
  }

  const [analysis, analysisBody] = section("Analysis", "analysis");
  renderAnalysis(analysisBody, call, reload);

  const [log, logBody] = section("Public log", "public-log");
  root.append(recording, transcript, latency, analysis, log);
  await Promise.all([player?.ready, renderLog(logBody, call)]);
}
