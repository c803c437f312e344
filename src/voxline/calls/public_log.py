"""The call's public log (`public_log_url`): a plain-text document a developer reads to debug a call.

Sections, in order: header (ids, status, reason, UTC start/end, duration), per-turn timeline (each
mark as `+t.ttt s` on the call clock, i.e. monotonic seconds minus `started_at`, and the stage
durations from `voxline.calls.latency.turn_stages`, so they equal the `latency` samples), every
LLM-WebSocket message both ways (call-clock time, direction, connection number, note, compact JSON
on one line, cut after `PAYLOAD_LIMIT` characters), the built-in LLM engine's log (epoch ms turned
into call-clock seconds with the call's `start_timestamp`), tool calls with their results, errors,
the latency summary and notes. The output depends only on the inputs (no current time), is plain
UTF-8 and has no terminal escape codes.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from voxline.calls.latency import METRIC_ORDER, answers_user, latency_from_marks, turn_stages
from voxline.conversation.marks import MARK_ORDER

PAYLOAD_LIMIT = 2000
"""Characters of one JSON payload or engine-log field kept before the truncation marker."""

TIMELINE_MARKS: tuple[str, ...] = (*MARK_ORDER[: MARK_ORDER.index("first_frame_sent") + 1], "first_audible_frame_sent")
TIMELINE_MARKS += tuple(m for m in MARK_ORDER if m not in TIMELINE_MARKS)
"""Marks shown per turn, in the order they normally happen."""

_NOT_MARKS = {"response_id", "reminder"}
_STAGE_ORDER: tuple[str, ...] = ("asr", "decision", "llm", "tts", "e2e")
_ARROWS = {"to_llm": "-> llm", "from_llm": "<- llm"}


@dataclass
class LogInputs:
    """Everything the public log is rendered from (see the module docstring)."""

    call: dict[str, Any]
    started_at: float
    turns: list[dict[str, Any]]
    transcript_with_tool_calls: list[dict[str, Any]]
    llm_messages: Sequence[Any] = ()
    engine_log: Sequence[dict[str, Any]] = ()
    errors: Sequence[str] = ()
    notes: Sequence[str] = ()
    latency: dict[str, Any] | None = None


# --- formatting helpers -------------------------------------------------------------------------


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def printable(line: str) -> str:
    """One line with control characters (newlines, ESC of terminal codes…) shown as escapes."""
    return line.translate(_CONTROL)


def clock(seconds: float) -> str:
    """A call-clock time: `+1.234 s` (negative before the call clock's zero)."""
    return f"{seconds:+.3f} s"


def compact_json(value: Any, limit: int = PAYLOAD_LIMIT) -> str:
    """One-line JSON (non-JSON values via str), cut after `limit` characters with a marker."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # non-string keys, circular references
        text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ...[truncated: {len(text)} chars in all]"


def _iso(epoch_ms: Any) -> str:
    if not isinstance(epoch_ms, int | float) or isinstance(epoch_ms, bool):
        return "-"
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: int | float | None) -> str:
    return "-" if value is None else f"{value} ms"


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", title, "-" * len(title), *(lines or ["(none)"])]


def _field(item: Any, name: str, default: Any = None) -> Any:
    """An attribute of a LoggedMessage-like object, or a key of a dict."""
    if isinstance(item, dict):
        return item.get(name, default)
    return getattr(item, name, default)


# --- sections -----------------------------------------------------------------------------------


def _duration_ms(call: dict[str, Any]) -> int | None:
    if isinstance(call.get("duration_ms"), int | float):
        return int(call["duration_ms"])
    start, end = call.get("start_timestamp"), call.get("end_timestamp")
    if isinstance(start, int | float) and isinstance(end, int | float):
        return int(end - start)
    return None


def _header(call: dict[str, Any]) -> list[str]:
    title = "Voxline call log"
    version = call.get("agent_version")
    agent = f"{call.get('agent_id', '-')}" + (f" (version {version})" if version is not None else "")
    duration = _duration_ms(call)
    rows = [
        ("call_id", call.get("call_id", "-")),
        ("agent", agent),
        ("call_status", call.get("call_status", "-")),
        ("disconnection_reason", call.get("disconnection_reason") or "-"),
        ("start", f"{_iso(call.get('start_timestamp'))}  (call clock +0.000 s)"),
        ("end", _iso(call.get("end_timestamp"))),
        ("duration", "-" if duration is None else f"{duration / 1000:.3f} s ({duration} ms)"),
    ]
    return [title, "=" * len(title), *(f"{key + ':':<22}{value}" for key, value in rows)]


def _turn_marks(turn: dict[str, Any]) -> list[str]:
    """Known marks in timeline order, then any other numeric fields, sorted by name."""
    extra = sorted(k for k in turn if k not in TIMELINE_MARKS and k not in _NOT_MARKS)
    return [name for name in (*TIMELINE_MARKS, *extra) if _is_number(turn.get(name))]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _turn_title(index: int, turn: dict[str, Any]) -> str:
    kind = "begin message" if turn.get("response_id") == 0 else "reminder" if turn.get("reminder") else "user turn"
    return f"Turn {index}  response_id={turn.get('response_id', '-')}  ({kind})"


def _stage_line(turn: dict[str, Any]) -> str:
    stages = turn_stages(turn)
    parts = [f"{name} {_ms(stages[name])}" for name in _STAGE_ORDER]
    suffix = "" if answers_user(turn) else "  (e2e not counted: no user turn)"
    return "  stages: " + " | ".join(parts) + suffix


def _turns(turns: list[dict[str, Any]], started_at: float) -> list[str]:
    lines: list[str] = []
    for index, turn in enumerate(turns, start=1):
        lines.append(_turn_title(index, turn))
        lines.extend(f"  {clock(turn[name] - started_at):>11}  {name}" for name in _turn_marks(turn))
        lines.append(_stage_line(turn))
    return lines


def _llm_messages(messages: Iterable[Any], started_at: float) -> list[str]:
    lines: list[str] = []
    for message in messages:
        at = _field(message, "at")
        when = clock(at - started_at) if _is_number(at) else "?"
        direction = _field(message, "direction", "?")
        arrow = _ARROWS.get(direction, str(direction))
        note = _field(message, "note", "")
        note_text = f"  [{note}]" if note else ""
        conn = _field(message, "connection", "?")
        lines.append(f"{when:>11}  {arrow}  conn #{conn}{note_text}  {compact_json(_field(message, 'payload'))}")
    return lines


def _engine_time(at: Any, start_ms: Any) -> str:
    if not _is_number(at):
        return "?"
    if not _is_number(start_ms):
        return f"@{at} ms"
    return clock((at - start_ms) / 1000)


def _engine_log(entries: Iterable[dict[str, Any]], start_ms: Any) -> list[str]:
    lines: list[str] = []
    for entry in entries:
        fields = " ".join(f"{k}={compact_json(v)}" for k, v in entry.items() if k not in ("at", "kind"))
        line = f"{_engine_time(entry.get('at'), start_ms):>11}  {entry.get('kind', '?')}"
        lines.append(f"{line}  {fields}" if fields else line)
    return lines


def _tool_calls(items: list[dict[str, Any]]) -> list[str]:
    results = {i.get("tool_call_id"): i for i in items if i.get("role") == "tool_call_result"}
    invoked = {i.get("tool_call_id") for i in items if i.get("role") == "tool_call_invocation"}
    lines: list[str] = []
    for item in items:
        if item.get("role") == "tool_call_invocation":
            lines.extend(_invocation(item, results.get(item.get("tool_call_id"))))
        elif item.get("role") == "tool_call_result" and item.get("tool_call_id") not in invoked:
            lines.append(f"result without invocation  id={item.get('tool_call_id')}")
            lines.append(_result_line(item))
    return lines


def _invocation(item: dict[str, Any], result: dict[str, Any] | None) -> list[str]:
    kind = f"  type={item['type']}" if item.get("type") else ""
    return [
        f"{item.get('name', '?')}  id={item.get('tool_call_id', '?')}{kind}",
        f"  arguments: {_clip(str(item.get('arguments', '')))}",
        _result_line(result) if result is not None else "  result: (none)",
    ]


def _result_line(result: dict[str, Any]) -> str:
    successful = result.get("successful")
    flag = "" if successful is None else f" (successful={str(bool(successful)).lower()})"
    return f"  result{flag}: {_clip(str(result.get('content', '')))}"


def _clip(text: str) -> str:
    if len(text) <= PAYLOAD_LIMIT:
        return text
    return f"{text[:PAYLOAD_LIMIT]} ...[truncated: {len(text)} chars in all]"


def _latency(latency: dict[str, Any]) -> list[str]:
    names = [m for m in METRIC_ORDER if m in latency] + sorted(m for m in latency if m not in METRIC_ORDER)
    if not names:
        return []
    head = f"{'metric':<27}{'p50':>8}{'p95':>8}{'min':>8}{'max':>8}{'num':>6}"
    rows = [
        f"{name:<27}{_cell(latency[name], 'p50')}{_cell(latency[name], 'p95')}"
        f"{_cell(latency[name], 'min')}{_cell(latency[name], 'max')}{latency[name].get('num', '-'):>6}"
        for name in names
    ]
    return [head + "  (ms)", *rows]


def _cell(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key)
    return f"{'-' if value is None else value:>8}"


def _bullets(items: Iterable[str]) -> list[str]:
    return [f"- {_clip(item)}" for item in items]


def render_public_log(inputs: LogInputs) -> str:
    """The whole public log as text (ends with a newline)."""
    latency = inputs.latency if inputs.latency is not None else latency_from_marks(inputs.turns)
    lines = _header(inputs.call)
    lines += _section("Turns (call clock)", _turns(inputs.turns, inputs.started_at))
    lines += _section("LLM WebSocket messages", _llm_messages(inputs.llm_messages, inputs.started_at))
    lines += _section("LLM engine log", _engine_log(inputs.engine_log, inputs.call.get("start_timestamp")))
    lines += _section("Tool calls", _tool_calls(inputs.transcript_with_tool_calls))
    lines += _section("Errors", _bullets(inputs.errors))
    lines += _section("Latency", _latency(latency))
    lines += _section("Notes", _bullets(inputs.notes))
    return "\n".join(printable(line) for line in lines) + "\n"
