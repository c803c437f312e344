"""Retell-style dynamic variables (``{{name}}``) for the built-in prompt LLM (API spec D.5).

Syntax
    ``{{name}}``; whitespace just inside the braces is trimmed, so ``{{ name }}`` is ``{{name}}``.
    Placeholders nest and are evaluated inner first: ``{{current_time_{{my_timezone}}}}`` first replaces
    ``{{my_timezone}}`` and then looks up ``current_time_<that value>``.  In a run of more than two braces
    the innermost pair is the delimiter (``{{{x}}}`` renders as ``{`` + value + ``}``).

Resolution (highest first), see `resolve_variables`
    live override (update-live-call ``override_dynamic_variables``) → the call's
    ``retell_llm_dynamic_variables`` → the LLM's ``default_dynamic_variables``.  A ``None`` (JSON ``null``)
    value does not hide the layer below; ``""`` is a real value.  Values collected during the call (tool
    ``response_variables``, extract_dynamic_variable, state-edge parameters) are added/overwritten by the
    caller as they arrive.  User/collected values win over system variables of the same name.

Rendering, see `render`
    * Missing variable → the placeholder stays verbatim (``Hello {{user_name}}``).
    * Empty-string value → replaced by nothing.
    * Substituted values are never re-scanned: a value containing ``{{x}}`` is inserted literally, so a
      caller-supplied value cannot inject other variables.  (Inside a nested placeholder the inserted value
      only becomes part of the outer *name*, which is looked up once and never expanded further.)
    * One left-to-right pass with a stack of open placeholders: linear in the input for any input,
      no regex backtracking; unbalanced braces are kept as written.  Placeholder content longer than
      1000 characters is never a variable name (kept verbatim), which bounds the work per character.

Values, see `to_variable_value`
    All values are strings: ``str`` as is, ``bool`` → ``"true"``/``"false"``, numbers in JSON/JavaScript form
    (``3`` → ``"3"``, ``2.5`` → ``"2.5"``, an integral float ``3.0`` → ``"3"``), ``dict``/``list``/``tuple`` →
    compact JSON (``{"a":1}``), ``None`` → ``""``, anything else → ``str(value)``.

System variables, see `SystemVariables.lookup`
    Formats follow Retell's public docs (docs.retellai.com/build/dynamic-variables) where they are specified,
    otherwise the choice made here is stated.  ``<tz>`` is any IANA zone name (e.g. ``Europe/London``); an
    unknown zone leaves the placeholder verbatim.  Default zone: ``America/Los_Angeles``.

    * ``current_time`` / ``current_time_<tz>``: ``Thursday, March 28, 2024 at 11:46 PM PST`` (our spec's
      format; Retell's page shows seconds as well, ``11:46:04 PM PST`` — see ``_TIME_WITH_SECONDS``).
    * ``current_hour`` / ``current_hour_<tz>``: hour + minute / 60, rounded to 2 decimals, no trailing
      zeros: 03:30 → ``"3.5"``, 15:00 → ``"15"``, 09:20 → ``"9.33"`` (seconds ignored) — our choice.
    * ``current_calendar`` / ``current_calendar_<tz>``: 14 lines joined by ``\\n``, one per day starting
      today, each ``Thursday, March 28, 2024 PST`` (zone abbreviation at noon that day), the first suffixed
      `` (Today)`` — line format from Retell's docs.
    * ``session_type``: ``voice``; ``call_type``: ``web_call`` (or as configured); ``call_id``.
    * ``session_duration``: elapsed since ``started_at_ms`` as ``[H hour(s) ]M minute(s) S second(s)``:
      hours only from one hour on, minutes from one minute on, seconds always, singular for 1 —
      ``0 seconds``, ``45 seconds``, ``1 minute 5 seconds``, ``20 minutes 30 seconds``,
      ``2 hours 0 minutes 7 seconds`` (our choice; the retrievable Retell docs give no format for it).
    * ``session_duration_ms``: elapsed milliseconds as an integer string (``0`` if the call has not started).
    * ``current_agent_state`` / ``previous_agent_state``: the state names; while unknown (``None``) the
      placeholder stays verbatim like any missing variable.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Variables = Mapping[str, str]
T = TypeVar("T")

DEFAULT_TIMEZONE = "America/Los_Angeles"
CALENDAR_DAYS = 14
_TIME_WITH_SECONDS = False  # Retell's docs print "11:46:04 PM"; our spec (D.5) prints "11:46 PM".

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_TZ_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
_MAX_TZ_NAME = 64
_BRACE_RUN = re.compile(r"\{+|\}+")
_MAX_NAME_LENGTH = 1000  # longer placeholder content is never looked up (kept verbatim)


# --- values ---------------------------------------------------------------------------------------------


def to_variable_value(value: object) -> str:
    """Convert any JSON-ish value to the string a dynamic variable holds."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def _float_text(value: float) -> str:
    """A float as JavaScript's ``String(x)`` prints it for everyday values (``3.0`` → ``3``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def resolve_variables(
    defaults: Mapping[str, object] | None,
    call_values: Mapping[str, object] | None,
    overrides: Mapping[str, object] | None,
) -> dict[str, str]:
    """Merge the three layers, later layers winning; ``None`` values never hide a lower layer."""
    merged: dict[str, str] = {}
    for layer in (defaults, call_values, overrides):
        for name, value in (layer or {}).items():
            if value is not None:
                merged[str(name)] = to_variable_value(value)
    return merged


# --- system variables -----------------------------------------------------------------------------------


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SystemVariables:
    """The per-call values behind Retell's built-in variables (see the module docstring for formats)."""

    call_id: str = ""
    call_type: str = "web_call"
    session_type: str = "voice"
    started_at_ms: int | None = None
    current_agent_state: str | None = None
    previous_agent_state: str | None = None
    now_ms: Callable[[], int] = field(default=_wall_clock_ms)

    def lookup(self, name: str) -> str | None:
        """The value of system variable ``name``, or ``None`` if there is no such variable (or bad zone)."""
        simple = self._simple(name)
        if simple is not None:
            return simple
        return self._timed(name)

    def _simple(self, name: str) -> str | None:
        if name == "call_id":
            return self.call_id
        if name == "call_type":
            return self.call_type
        if name == "session_type":
            return self.session_type
        if name == "current_agent_state":
            return self.current_agent_state
        if name == "previous_agent_state":
            return self.previous_agent_state
        if name == "session_duration_ms":
            return str(self._elapsed_ms())
        if name == "session_duration":
            return format_duration(self._elapsed_ms())
        return None

    def _timed(self, name: str) -> str | None:
        for prefix, formatter in _TIMED_VARIABLES.items():
            if name == prefix:
                return formatter(self._now(_zone(DEFAULT_TIMEZONE)))
            if name.startswith(prefix + "_"):
                zone = _zone(name[len(prefix) + 1 :])
                return None if zone is None else formatter(self._now(zone))
        return None

    def _now(self, zone: tzinfo) -> datetime:
        now_ms = self.now_ms()
        return datetime.fromtimestamp(now_ms // 1000, zone) + timedelta(milliseconds=now_ms % 1000)

    def _elapsed_ms(self) -> int:
        if self.started_at_ms is None:
            return 0
        return max(0, self.now_ms() - self.started_at_ms)


def _zone(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or ``None`` when it is not a valid, installed zone."""
    if len(name) > _MAX_TZ_NAME or not _TZ_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _date_text(day: date) -> str:
    return f"{_WEEKDAYS[day.weekday()]}, {_MONTHS[day.month - 1]} {day.day}, {day.year}"


def format_time(moment: datetime) -> str:
    """``Thursday, March 28, 2024 at 11:46 PM PST`` (the zone abbreviation comes from ``moment``)."""
    hour12 = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    clock = f"{hour12}:{moment.minute:02d}"
    if _TIME_WITH_SECONDS:
        clock += f":{moment.second:02d}"
    return f"{_date_text(moment.date())} at {clock} {meridiem} {moment.tzname()}"


def format_hour(moment: datetime) -> str:
    """Fractional hour of day: 03:30 → ``3.5``, 15:00 → ``15``, 09:20 → ``9.33``."""
    return f"{moment.hour + moment.minute / 60:.2f}".rstrip("0").rstrip(".")


def format_calendar(moment: datetime) -> str:
    """14 lines, one per day from ``moment``'s date, each with that day's zone abbreviation (at noon)."""
    zone = moment.tzinfo
    today = moment.date()
    lines = []
    for offset in range(CALENDAR_DAYS):
        day = today + timedelta(days=offset)
        abbreviation = datetime(day.year, day.month, day.day, 12, tzinfo=zone).tzname()
        suffix = " (Today)" if offset == 0 else ""
        lines.append(f"{_date_text(day)} {abbreviation}{suffix}")
    return "\n".join(lines)


def format_duration(elapsed_ms: int) -> str:
    """``0 seconds``, ``1 minute 5 seconds``, ``20 minutes 30 seconds``, ``2 hours 0 minutes 7 seconds``."""
    total_seconds = max(0, elapsed_ms) // 1000
    hours, rest = divmod(total_seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(_count(hours, "hour"))
    if hours or minutes:
        parts.append(_count(minutes, "minute"))
    parts.append(_count(seconds, "second"))
    return " ".join(parts)


def _count(amount: int, unit: str) -> str:
    return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"


_TIMED_VARIABLES: dict[str, Callable[[datetime], str]] = {
    "current_time": format_time,
    "current_hour": format_hour,
    "current_calendar": format_calendar,
}


# --- rendering ------------------------------------------------------------------------------------------


class _Node:
    """The content of one open (or unresolved) placeholder: text pieces and deferred long children."""

    __slots__ = ("length", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str | _Node] = []
        self.length = 0

    def add_text(self, text: str) -> None:
        if text:
            self.pieces.append(text)
            self.length += len(text)

    def add_unresolved(self, child: _Node) -> None:
        """Keep ``{{child}}`` verbatim: as text when short, else as a node flattened only at the end."""
        if child.length <= _MAX_NAME_LENGTH:
            self.add_text("{{" + "".join(cast(list[str], child.pieces)) + "}}")
        else:
            self.pieces.append(child)
            self.length += child.length + 4


class _Renderer:
    """One left-to-right pass over a template with a stack of open placeholders.

    Only a placeholder whose content is at most ``_MAX_NAME_LENGTH`` characters is ever joined into a name
    (such content holds text only, see `_Node.add_unresolved`), so every character is copied a bounded
    number of times and deep nesting stays linear.
    """

    def __init__(self, values: Variables, system: SystemVariables | None) -> None:
        self._values = values
        self._system = system
        self._stack: list[_Node] = [_Node()]

    def run(self, template: str) -> str:
        position = 0
        for match in _BRACE_RUN.finditer(template):
            self._stack[-1].add_text(template[position : match.start()])
            run = match.group()
            if run[0] == "{":
                self._open_run(len(run))
            else:
                self._close_run(len(run))
            position = match.end()
        self._stack[-1].add_text(template[position:])
        return self._finish()

    def _open_run(self, length: int) -> None:
        self._stack[-1].add_text("{" * (length % 2))  # in "{{{x}}}" the innermost two braces delimit
        for _ in range(length // 2):
            self._stack.append(_Node())

    def _close_run(self, length: int) -> None:
        for _ in range(length // 2):
            if len(self._stack) > 1:
                self._close()
            else:
                self._stack[-1].add_text("}}")
        self._stack[-1].add_text("}" * (length % 2))

    def _close(self) -> None:
        inner = self._stack.pop()
        value = None
        if inner.length <= _MAX_NAME_LENGTH:
            value = self._resolve("".join(cast(list[str], inner.pieces)).strip())
        if value is None:
            self._stack[-1].add_unresolved(inner)
        else:
            self._stack[-1].add_text(value)

    def _resolve(self, name: str) -> str | None:
        if not name:
            return None
        value = self._values.get(name)
        if value is None and self._system is not None:
            value = self._system.lookup(name)
        return value

    def _finish(self) -> str:
        root = _Node()
        root.pieces.extend(self._stack[0].pieces)
        for unclosed in self._stack[1:]:
            root.pieces.append("{{")
            root.pieces.extend(unclosed.pieces)
        return _flatten(root)


def _flatten(root: _Node) -> str:
    """The text of ``root``, writing deferred children as ``{{…}}`` (iterative: nesting may be deep)."""
    out: list[str] = []
    pending: list[str | _Node] = list(reversed(root.pieces))
    while pending:
        piece = pending.pop()
        if isinstance(piece, str):
            out.append(piece)
        else:
            pending.append("}}")
            pending.extend(reversed(piece.pieces))
            pending.append("{{")
    return "".join(out)


def render(template: str, values: Variables, system: SystemVariables | None = None) -> str:
    """Substitute every ``{{name}}`` in ``template`` (rules in the module docstring)."""
    if "{{" not in template:
        return template
    return _Renderer(values, system).run(template)


def render_deep(obj: T, values: Variables, system: SystemVariables | None = None) -> T:
    """`render` every string inside nested dicts/lists/tuples (dict keys untouched); other values as is."""
    if isinstance(obj, str):
        return cast(T, render(obj, values, system))
    if isinstance(obj, dict):
        return cast(T, {key: render_deep(item, values, system) for key, item in obj.items()})
    if isinstance(obj, list):
        return cast(T, [render_deep(item, values, system) for item in obj])
    if isinstance(obj, tuple):
        return cast(T, tuple(render_deep(item, values, system) for item in obj))
    return obj
