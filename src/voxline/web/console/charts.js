// Per-turn latency: grouped bars (one group per turn, one bar per stage) with each stage's p50
// and p95 as lines, as inline SVG, and the same numbers as a table.
import { el, svg } from "./dom.js";

/** Stages measured once per turn (llm_websocket_network_rtt is per ping, not per turn). */
export const STAGES = ["e2e", "asr", "llm", "tts", "knowledge_base", "s2s"];
const COLORS = {
  e2e: "#2f6fdb", asr: "#3aa675", llm: "#d9822b", tts: "#8e5bd1", knowledge_base: "#c2410c", s2s: "#0e7490",
};

function stagesOf(latency) {
  return STAGES.filter((name) => Array.isArray(latency?.[name]?.values) && latency[name].values.length);
}

/** A round axis maximum and tick step for `max` ms. */
function axis(max) {
  const rough = Math.max(max, 1) / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return { top: Math.ceil(Math.max(max, 1) / step) * step, step };
}

/**
 * `latency` with each stage's `values` laid out by turn when the server's per-turn stages are known
 * (GET /voxline/call-turns/<id>): index i is turn i for every stage (null where a stage did not
 * happen, e.g. e2e of the greeting), so a turn's bars stand side by side. Without them, values
 * stay in measurement order.
 */
export function alignByTurn(latency, turns) {
  if (!latency || !Array.isArray(turns) || !turns.length) return latency;
  const aligned = {};
  for (const [stage, stats] of Object.entries(latency)) {
    if (!STAGES.includes(stage)) { aligned[stage] = stats; continue; }
    aligned[stage] = { ...stats, values: turns.map((t) => t.stages?.[stage] ?? null) };
  }
  return aligned;
}

export function renderLatencyChart(latency) {
  const stages = stagesOf(latency);
  if (!stages.length) return null;
  const turns = Math.max(...stages.map((s) => latency[s].values.length));
  const max = Math.max(...stages.flatMap((s) => [...latency[s].values.filter((v) => v != null), latency[s].p95 ?? 0]));
  const { top, step } = axis(max);

  const margin = { left: 56, right: 90, top: 12, bottom: 34 };
  const barWidth = 22;
  const groupWidth = stages.length * barWidth + 40;
  const plotWidth = Math.max(480, turns * groupWidth);
  const plotHeight = 220;
  const width = margin.left + plotWidth + margin.right;
  const height = margin.top + plotHeight + margin.bottom;
  const y = (ms) => margin.top + plotHeight - (ms / top) * plotHeight;

  const chart = svg("svg", {
    id: "latency-chart", class: "latency-chart", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": "Latency per turn, in milliseconds",
  });
  for (let tickMs = 0; tickMs <= top; tickMs += step) {
    chart.append(
      svg("line", { x1: margin.left, x2: margin.left + plotWidth, y1: y(tickMs), y2: y(tickMs), class: "grid" }),
      svg("text", { x: margin.left - 6, y: y(tickMs) + 4, class: "tick", "text-anchor": "end", text: tickMs }));
  }
  chart.append(svg("text", {
    x: 14, y: margin.top + plotHeight / 2, class: "axis-label", "text-anchor": "middle",
    transform: `rotate(-90 14 ${margin.top + plotHeight / 2})`, text: "ms",
  }));

  for (let turn = 0; turn < turns; turn++) {
    const x0 = margin.left + turn * groupWidth + 20;
    const group = svg("g", { class: "turn", dataset: { turn } });
    stages.forEach((stage, index) => {
      const value = latency[stage].values[turn];
      if (value === undefined || value === null) return;
      group.append(svg("rect", {
        class: "bar", x: x0 + index * barWidth, y: y(value), width: barWidth - 2,
        height: Math.max(0.5, margin.top + plotHeight - y(value)), fill: COLORS[stage],
        dataset: { metric: stage, turn, value },
      }, svg("title", { text: `turn ${turn + 1}, ${stage}: ${value} ms` })));
    });
    group.append(svg("text", {
      x: x0 + (stages.length * barWidth) / 2, y: margin.top + plotHeight + 16, class: "tick",
      "text-anchor": "middle", text: `turn ${turn + 1}`,
    }));
    chart.append(group);
  }

  for (const stage of stages) {
    for (const [mark, dash] of [["p50", ""], ["p95", "6 4"]]) {
      const value = latency[stage][mark];
      if (value === undefined || value === null) continue;
      chart.append(svg("line", {
        class: `mark mark-${mark}`, x1: margin.left, x2: margin.left + plotWidth, y1: y(value), y2: y(value),
        stroke: COLORS[stage], "stroke-dasharray": dash || undefined, dataset: { metric: stage, mark, value },
      }, svg("title", { text: `${stage} ${mark}: ${value} ms` })));
    }
  }

  const legend = svg("g", { class: "legend" });
  stages.forEach((stage, index) => {
    const ly = margin.top + 8 + index * 18;
    const lx = margin.left + plotWidth + 12;
    legend.append(svg("rect", { x: lx, y: ly - 9, width: 10, height: 10, fill: COLORS[stage] }),
      svg("text", { x: lx + 16, y: ly, class: "tick", text: stage }));
  });
  const ly = margin.top + 8 + stages.length * 18 + 6;
  const lx = margin.left + plotWidth + 12;
  legend.append(
    svg("line", { x1: lx, x2: lx + 14, y1: ly - 4, y2: ly - 4, class: "legend-line" }),
    svg("text", { x: lx + 18, y: ly, class: "tick", text: "p50" }),
    svg("line", { x1: lx, x2: lx + 14, y1: ly + 14, y2: ly + 14, class: "legend-line", "stroke-dasharray": "4 3" }),
    svg("text", { x: lx + 18, y: ly + 18, class: "tick", text: "p95" }));
  chart.append(legend);
  return chart;
}

export function renderLatencyTable(latency) {
  const stages = stagesOf(latency);
  const extra = Array.isArray(latency?.llm_websocket_network_rtt?.values) ? ["llm_websocket_network_rtt"] : [];
  const rows = [...stages, ...extra];
  if (!rows.length) return null;
  const turns = Math.max(...stages.map((s) => latency[s].values.length), 0);
  const turnHeads = Array.from({ length: turns }, (_, i) => `turn ${i + 1}`);
  const cell = (value) => el("td", { class: "num", text: value === undefined || value === null ? "–" : value });
  return el("table", { class: "latency-table", id: "latency-table" },
    el("thead", {}, el("tr", {}, ["stage (ms)", ...turnHeads, "p50", "p95", "min", "max", "n"]
      .map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((stage) => {
      const stats = latency[stage];
      const perTurn = turnHeads.map((_, i) => cell(stages.includes(stage) ? stats.values[i] : null));
      return el("tr", { dataset: { metric: stage } }, el("th", { text: stage }), perTurn,
        cell(stats.p50), cell(stats.p95), cell(stats.min), cell(stats.max), cell(stats.num));
    })));
}
