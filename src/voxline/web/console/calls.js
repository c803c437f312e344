// The call list: filters, a table of calls, and a "more" button that follows pagination_key.
import { api } from "./api.js";
import { clear, el, formatDuration, formatMs, formatTime } from "./dom.js";

const PAGE_SIZE = 25;
const STATUSES = ["registered", "not_connected", "ongoing", "ended", "error"];
const REASONS = [
  "user_hangup", "agent_hangup", "inactivity", "max_duration_reached", "manual_stopped",
  "concurrency_limit_reached", "error_user_not_joined", "registered_call_timeout",
  "error_llm_websocket_open", "error_llm_websocket_lost_connection", "error_llm_websocket_runtime",
  "error_llm_websocket_corrupt_payload", "error_no_audio_received", "error_asr", "error_retell",
  "error_unknown", "voicemail_reached", "call_transfer", "user_requested_dnc",
];

// Filters survive going to a call and back (same tab).
const state = { agent: "", status: "", reason: "", from: "", to: "" };

function select(name, label, options) {
  const node = el("select", { name, id: `filter-${name}` },
    el("option", { value: "", text: "any" }),
    options.map(([value, text]) => el("option", { value, text })));
  node.value = state[name];
  return el("label", {}, label, node);
}

function dateInput(name, label) {
  const node = el("input", { type: "datetime-local", name, id: `filter-${name}` });
  node.value = state[name];
  return el("label", {}, label, node);
}

/** The `filter_criteria` of POST /v3/list-calls for the current filters. */
export function filterCriteria(filters) {
  const criteria = {};
  if (filters.agent) criteria.agent = [{ agent_id: filters.agent }];
  if (filters.status) criteria.call_status = { type: "enum", op: "in", value: [filters.status] };
  if (filters.reason) criteria.disconnection_reason = { type: "enum", op: "in", value: [filters.reason] };
  const from = filters.from ? new Date(filters.from).getTime() : null;
  const to = filters.to ? new Date(filters.to).getTime() + 59_999 : null;  // the whole last minute
  if (from !== null && to !== null) criteria.start_timestamp = { type: "range", op: "bt", value: [from, to] };
  else if (from !== null) criteria.start_timestamp = { type: "number", op: "ge", value: from };
  else if (to !== null) criteria.start_timestamp = { type: "number", op: "le", value: to };
  return criteria;
}

async function agentOptions() {
  const agents = await api("/list-agents");
  const names = new Map();
  for (const agent of agents) names.set(agent.agent_id, agent.agent_name || agent.agent_id);
  return [...names.entries()].sort((a, b) => a[1].localeCompare(b[1]));
}

function row(call) {
  const p50 = call.latency?.e2e?.p50;
  const link = el("a", { href: `#/calls/${encodeURIComponent(call.call_id)}`, text: formatTime(call.start_timestamp) });
  return el("tr", { dataset: { callId: call.call_id } },
    el("td", {}, link),
    el("td", { text: call.agent_name || call.agent_id }),
    el("td", {}, el("span", { class: `status status-${call.call_status}`, text: call.call_status })),
    el("td", { text: call.disconnection_reason ?? "–" }),
    el("td", { class: "num", text: formatDuration(call.duration_ms) }),
    el("td", { class: "num", text: p50 === undefined || p50 === null ? "–" : formatMs(p50) }));
}

export async function renderCalls(root) {
  const agents = await agentOptions();
  const form = el("form", { class: "filters", id: "filters" },
    select("agent", "Agent", agents),
    select("status", "Status", STATUSES.map((s) => [s, s])),
    select("reason", "Reason", REASONS.map((r) => [r, r])),
    dateInput("from", "From"),
    dateInput("to", "To"),
    el("button", { type: "submit", text: "Apply" }),
    el("button", { type: "button", class: "secondary", text: "Reset", onclick: () => {
      Object.assign(state, { agent: "", status: "", reason: "", from: "", to: "" });
      renderCalls(clear(root));
    } }));
  const body = el("tbody", { id: "calls-body" });
  const table = el("table", { class: "calls", id: "calls" },
    el("thead", {}, el("tr", {}, ["Start", "Agent", "Status", "Reason", "Duration", "e2e p50"]
      .map((h) => el("th", { text: h })))),
    body);
  const status = el("p", { class: "note", id: "calls-status" });
  const more = el("button", { type: "button", id: "more", text: "More", hidden: true });
  root.append(el("h1", { text: "Calls" }), form, table, status, more);

  let paginationKey = null;
  let loading = false;
  async function load(reset) {
    if (loading) return;
    loading = true;
    if (reset) {
      clear(body);
      paginationKey = null;
    }
    status.textContent = "Loading…";
    const request = { filter_criteria: filterCriteria(state), limit: PAGE_SIZE, sort_order: "descending" };
    if (paginationKey) request.pagination_key = paginationKey;
    try {
      const page = await api("/v3/list-calls", { method: "POST", body: request });
      body.append(...page.items.map(row));
      paginationKey = page.has_more ? page.pagination_key : null;
      more.hidden = !paginationKey;
      const shown = body.children.length;
      status.textContent = shown ? `${shown} call${shown === 1 ? "" : "s"} shown` : "No calls match.";
    } catch (error) {
      status.textContent = `Could not list calls: ${error.message}`;
    } finally {
      loading = false;
      root.dataset.loaded = String(Date.now());
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    for (const name of Object.keys(state)) state[name] = String(data.get(name) ?? "");
    load(true);
  });
  more.addEventListener("click", () => load(false));
  await load(true);
}
