"""The call's Retell `latency` object (spec B.5), derived from per-turn latency marks.

Each turn is `TurnMarks.as_dict()`: monotonic seconds of each step (None = did not happen), plus
`response_id` (0 = the begin message) and `reminder`. An optional `first_audible_frame_sent` mark (the
first sent agent frame louder than the silence threshold) is used when present.

Per-turn samples, in milliseconds (`turn_stages`):

- `e2e`: user_speech_end -> first_audible_frame_sent (or first_frame_sent when the audible mark is
  missing or None). Only turns that answer a user turn count: the begin message (response_id 0) and
  reminders are excluded.
- `asr`: user_speech_end -> asr_final.
- `decision` (public log only, not a Latency metric): user_speech_end -> turn_decision.
- `llm`: llm_request -> first_speakable_chunk, for every turn that has both marks (the begin message
  and reminders included: they are LLM requests too). For the custom LLM this includes the socket RTT.
- `tts`: tts_request -> tts_first_audio, for every turn that has both marks.

A difference with a missing end point, or a negative one, is no sample. `llm_websocket_network_rtt`
is the custom LLM's ping_pong round trips, passed in as they are (negative ones skipped).

Rounding: every sample is rounded half-up to a whole millisecond (an int, as in Retell's examples)
before anything else. `values` lists the rounded samples in turn order; `min`/`max` are samples;
`num` is the sample count. Percentiles use linear interpolation between closest ranks (numpy's
default, "type 7"): for sorted samples x[0..n-1], pXX sits at rank r = (n - 1) * XX / 100 and is
x[floor(r)] + (x[ceil(r)] - x[floor(r)]) * frac(r), then rounded half-up to a whole ms. For samples
100, 200, ..., 1000 that gives p50 550, p90 910, p95 955, p99 991. A metric without samples is omitted.
"""

import math
from typing import Any

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
"""Percentiles reported per metric (keys `p50`, `p90`, …)."""

METRIC_ORDER: tuple[str, ...] = ("e2e", "asr", "llm", "llm_websocket_network_rtt", "tts")
"""Latency keys Voxline fills, in the order they are built (knowledge_base and s2s have no source)."""

_SPANS: dict[str, tuple[str, str]] = {
    "asr": ("user_speech_end", "asr_final"),
    "decision": ("user_speech_end", "turn_decision"),
    "llm": ("llm_request", "first_speakable_chunk"),
    "tts": ("tts_request", "tts_first_audio"),
}
"""Stage name -> (start mark, end mark) for the stages measured as a plain difference."""


def round_ms(value: float) -> int:
    """Round half-up to a whole millisecond (Python's `round` would round half to even)."""
    return math.floor(value + 0.5)


def _mark(turn: dict[str, Any], name: str) -> float | None:
    value = turn.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _span_ms(start: float | None, end: float | None) -> int | None:
    """end - start in whole ms; None when a mark is missing or the difference is negative."""
    if start is None or end is None:
        return None
    ms = round_ms((end - start) * 1000)
    return ms if ms >= 0 else None


def answers_user(turn: dict[str, Any]) -> bool:
    """False for turns without a user turn before them: the begin message and reminders."""
    return turn.get("response_id") != 0 and not turn.get("reminder")


def agent_audio_mark(turn: dict[str, Any]) -> float | None:
    """When the agent started to be heard: the first audible frame, else the first frame sent."""
    audible = _mark(turn, "first_audible_frame_sent")
    return audible if audible is not None else _mark(turn, "first_frame_sent")


def turn_stages(turn: dict[str, Any]) -> dict[str, int | None]:
    """Per-turn stage durations in whole ms (None = no sample): asr, decision, llm, tts, e2e."""
    stages: dict[str, int | None] = {
        name: _span_ms(_mark(turn, start), _mark(turn, end)) for name, (start, end) in _SPANS.items()
    }
    e2e = _span_ms(_mark(turn, "user_speech_end"), agent_audio_mark(turn)) if answers_user(turn) else None
    stages["e2e"] = e2e
    return stages


def percentile(ordered: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks over already sorted, non-empty samples."""
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stats(values: list[float]) -> dict[str, Any]:
    """One `LatencyStats` dict from samples in ms (rounded to whole ms first); raises on no samples."""
    if not values:
        raise ValueError("latency stats need at least one sample")
    samples = [round_ms(v) for v in values]
    ordered = sorted(samples)
    result: dict[str, Any] = {f"p{p}": round_ms(percentile(ordered, p)) for p in PERCENTILES}
    result.update(max=ordered[-1], min=ordered[0], num=len(samples), values=samples)
    return result


def _usable(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def latency_from_marks(turns: list[dict[str, Any]], rtt_samples_ms: list[float] | None = None) -> dict[str, Any]:
    """The Latency wire dict: e2e, asr, llm, llm_websocket_network_rtt, tts; metrics without samples omitted."""
    samples: dict[str, list[float]] = {name: [] for name in METRIC_ORDER}
    for turn in turns:
        stages = turn_stages(turn)
        for name in ("e2e", "asr", "llm", "tts"):
            value = stages[name]
            if value is not None:
                samples[name].append(value)
    samples["llm_websocket_network_rtt"] = [v for v in rtt_samples_ms or [] if _usable(v)]
    return {name: stats(values) for name, values in samples.items() if values}
