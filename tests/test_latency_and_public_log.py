"""The call's `latency` object from per-turn marks, and the plain-text public log built from the same data."""

import re
from typing import Any

import pytest

from voxline.calls.latency import latency_from_marks, stats, turn_stages
from voxline.calls.public_log import PAYLOAD_LIMIT, LogInputs, render_public_log
from voxline.llm.custom_llm import LoggedMessage

T0 = 5000.0
"""Monotonic zero of the call clock in these tests."""

START_MS = 1_795_000_000_000
"""The call's start_timestamp (epoch ms) matching T0."""


def turn(response_id: int | None = 1, reminder: bool = False, **offsets: float | None) -> dict[str, Any]:
    """A TurnMarks.as_dict()-shaped dict with marks given as seconds after T0."""
    marks = {name: (None if value is None else T0 + value) for name, value in offsets.items()}
    return {"response_id": response_id, "reminder": reminder, **marks}


def user_turn(response_id: int = 1, at: float = 2.0, **overrides: float | None) -> dict[str, Any]:
    """A complete user turn starting at `at`: asr 200, llm 500, tts 150, e2e 1000 ms (audible)."""
    offsets: dict[str, float | None] = {
        "user_speech_start": at - 1.0,
        "user_speech_end": at,
        "asr_final": at + 0.2,
        "turn_decision": at + 0.3,
        "llm_request": at + 0.3,
        "llm_first_token": at + 0.6,
        "first_speakable_chunk": at + 0.8,
        "tts_request": at + 0.8,
        "tts_first_audio": at + 0.95,
        "first_frame_sent": at + 0.96,
        "first_audible_frame_sent": at + 1.0,
        "interruption": None,
    }
    offsets.update(overrides)
    return turn(response_id, **offsets)


BEGIN = turn(
    0, llm_request=0.01, first_speakable_chunk=0.31, tts_request=0.31, tts_first_audio=0.41, first_frame_sent=0.42
)


# --- latency ------------------------------------------------------------------------------------


def test_stats_percentiles_by_linear_interpolation() -> None:
    values = [float(v) for v in range(1000, 0, -100)]  # 1000, 900, …, 100: unsorted on purpose
    result = stats(values)
    assert result == {
        "p50": 550,
        "p90": 910,
        "p95": 955,
        "p99": 991,
        "max": 1000,
        "min": 100,
        "num": 10,
        "values": [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100],
    }


def test_stats_rounds_samples_half_up_to_whole_ms() -> None:
    result = stats([0.5, 1.49, 2.5])
    assert result["values"] == [1, 1, 3]
    assert all(isinstance(v, int) for v in result["values"])
    assert (result["min"], result["max"], result["p50"]) == (1, 3, 1)


def test_stats_single_sample_and_empty() -> None:
    assert stats([42.0]) == {"p50": 42, "p90": 42, "p95": 42, "p99": 42, "max": 42, "min": 42, "num": 1, "values": [42]}
    with pytest.raises(ValueError):
        stats([])


def test_latency_from_complete_user_turns() -> None:
    turns = [user_turn(1, at=2.0), user_turn(2, at=10.0, first_audible_frame_sent=11.2)]
    latency = latency_from_marks(turns)
    assert set(latency) == {"e2e", "asr", "llm", "tts"}
    assert latency["e2e"]["values"] == [1000, 1200]
    assert latency["asr"]["values"] == [200, 200]
    assert latency["llm"]["values"] == [500, 500]
    assert latency["tts"]["values"] == [150, 150]
    assert latency["e2e"]["num"] == 2


def test_begin_message_and_reminder_are_not_e2e_samples() -> None:
    reminder = turn(3, reminder=True, llm_request=20.0, first_speakable_chunk=20.4, first_frame_sent=20.6)
    reminder["user_speech_end"] = T0 + 19.0  # an old user mark must not make a reminder count
    latency = latency_from_marks([BEGIN, user_turn(1), reminder])
    assert latency["e2e"]["values"] == [1000]
    assert latency["llm"]["values"] == [300, 500, 400]  # they are still LLM requests
    assert latency["tts"]["values"] == [100, 150]


def test_begin_message_alone_has_no_e2e() -> None:
    latency = latency_from_marks([BEGIN])
    assert "e2e" not in latency and "asr" not in latency
    assert latency["llm"]["values"] == [300]


def test_e2e_falls_back_to_first_frame_sent() -> None:
    missing_key = user_turn(1)
    del missing_key["first_audible_frame_sent"]
    none_value = user_turn(2, at=10.0, first_audible_frame_sent=None)
    latency = latency_from_marks([missing_key, none_value])
    assert latency["e2e"]["values"] == [960, 960]


def test_missing_marks_are_skipped_per_metric() -> None:
    no_asr = user_turn(1, asr_final=None)
    no_tts = user_turn(2, at=10.0, tts_first_audio=None)
    no_audio = user_turn(3, at=20.0, first_frame_sent=None, first_audible_frame_sent=None)
    latency = latency_from_marks([no_asr, no_tts, no_audio])
    assert latency["asr"]["values"] == [200, 200]
    assert latency["tts"]["values"] == [150, 150]
    assert latency["e2e"]["values"] == [1000, 1000]
    assert latency["llm"]["num"] == 3


def test_negative_differences_are_skipped() -> None:
    early_asr = user_turn(1, asr_final=1.9)  # final transcript before the VAD's speech end
    stale_audio = user_turn(2, at=10.0, first_audible_frame_sent=9.5)
    latency = latency_from_marks([early_asr, stale_audio])
    assert latency["asr"]["values"] == [200]
    assert latency["e2e"]["values"] == [1000]


def test_no_samples_gives_empty_latency() -> None:
    assert latency_from_marks([]) == {}
    assert latency_from_marks([turn(1)], rtt_samples_ms=[]) == {}


def test_rtt_samples_pass_through() -> None:
    latency = latency_from_marks([], rtt_samples_ms=[12.4, 30.0, 18.6, -1.0])
    assert latency == {"llm_websocket_network_rtt": stats([12.4, 30.0, 18.6])}
    assert latency["llm_websocket_network_rtt"]["values"] == [12, 30, 19]
    assert latency["llm_websocket_network_rtt"]["p50"] == 19


def test_turn_stages_include_decision_wait() -> None:
    assert turn_stages(user_turn(1)) == {"asr": 200, "decision": 300, "llm": 500, "tts": 150, "e2e": 1000}
    assert turn_stages(BEGIN)["e2e"] is None


# --- public log ---------------------------------------------------------------------------------

CALL: dict[str, Any] = {
    "call_id": "call_abc123",
    "agent_id": "agent_def456",
    "agent_version": 3,
    "call_status": "ended",
    "disconnection_reason": "user_hangup",
    "start_timestamp": START_MS,
    "end_timestamp": START_MS + 30_250,
    "duration_ms": 30_250,
}

TRANSCRIPT: list[dict[str, Any]] = [
    {"role": "agent", "content": "Hello!"},
    {"role": "user", "content": "What is my balance?"},
    {
        "role": "tool_call_invocation",
        "tool_call_id": "tc_1",
        "name": "get_balance",
        "arguments": '{"account": "42"}',
        "type": "custom",
    },
    {"role": "tool_call_result", "tool_call_id": "tc_1", "content": '{"balance": 12.5}', "successful": True},
    {"role": "tool_call_invocation", "tool_call_id": "tc_2", "name": "transfer", "arguments": "{}"},
    {"role": "tool_call_result", "tool_call_id": "tc_2", "content": "no such number", "successful": False},
]


def messages() -> list[LoggedMessage]:
    return [
        LoggedMessage(
            T0 + 0.002, "to_llm", 1, {"interaction_type": "call_details", "call": {"call_id": "call_abc123"}}
        ),
        LoggedMessage(T0 + 0.250, "from_llm", 1, {"response_type": "config", "config": {"auto_reconnect": True}}),
        LoggedMessage(T0 + 0.300, "from_llm", 1, {"response_type": "response", "response_id": 0, "content": "Hello!"}),
        LoggedMessage(T0 + 2.300, "to_llm", 1, {"interaction_type": "response_required", "response_id": 1}),
        LoggedMessage(T0 + 2.900, "from_llm", 1, "{oops", note="malformed: Expecting property name"),
        LoggedMessage(T0 + 4.000, "to_llm", 2, {"interaction_type": "ping_pong", "timestamp": 1}),
    ]


def inputs(**overrides: Any) -> LogInputs:
    fields: dict[str, Any] = {
        "call": CALL,
        "started_at": T0,
        "turns": [BEGIN, user_turn(1, at=2.0), user_turn(2, at=10.0, asr_final=None, first_audible_frame_sent=None)],
        "transcript_with_tool_calls": TRANSCRIPT,
        "llm_messages": messages(),
        "engine_log": [
            {"at": START_MS + 2300, "kind": "llm_request", "response_id": 1, "model": "gpt-4o", "messages": 3},
            {"at": START_MS + 2900, "kind": "retry", "response_id": 1, "error": "timeout"},
        ],
        "errors": ["end_detail: llm websocket closed (1011)"],
        "notes": ["post-call analysis: summary skipped"],
    }
    fields.update(overrides)
    return LogInputs(**fields)


def section(text: str, title: str) -> list[str]:
    """The lines under one section title, up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_header_has_ids_status_times_and_duration() -> None:
    text = render_public_log(inputs())
    assert "call_id:              call_abc123" in text
    assert "agent_def456 (version 3)" in text
    assert "call_status:          ended" in text
    assert "disconnection_reason: user_hangup" in text
    assert "2026-11-18T11:06:40.000Z" in text
    assert "2026-11-18T11:07:10.250Z" in text
    assert "30.250 s (30250 ms)" in text


def test_every_llm_message_in_order_with_direction_time_and_connection() -> None:
    lines = section(render_public_log(inputs()), "LLM WebSocket messages")
    assert [line.split()[:4] for line in lines] == [
        ["+0.002", "s", "->", "llm"],
        ["+0.250", "s", "<-", "llm"],
        ["+0.300", "s", "<-", "llm"],
        ["+2.300", "s", "->", "llm"],
        ["+2.900", "s", "<-", "llm"],
        ["+4.000", "s", "->", "llm"],
    ]
    assert '{"interaction_type":"call_details","call":{"call_id":"call_abc123"}}' in lines[0]
    assert "conn #1" in lines[0] and "conn #2" in lines[5]
    assert '[malformed: Expecting property name]  "{oops"' in lines[4]


def test_turn_timeline_numbers_equal_latency_values() -> None:
    data = inputs()
    text = render_public_log(data)
    latency = latency_from_marks(data.turns)
    stage_lines = [line for line in section(text, "Turns (call clock)") if line.startswith("  stages:")]
    assert len(stage_lines) == 3
    found: dict[str, list[int]] = {"asr": [], "llm": [], "tts": [], "e2e": []}
    for line in stage_lines:
        for name, value in re.findall(r"(\w+) (\d+) ms", line):
            if name in found:
                found[name].append(int(value))
    for name, values in found.items():
        assert values == latency[name]["values"], name
    assert found["e2e"] == [1000, 960]
    assert "  +2.000 s  user_speech_end" in text
    assert "  +3.000 s  first_audible_frame_sent" in text
    assert "e2e -  (e2e not counted: no user turn)" in stage_lines[0]


def test_latency_summary_shows_p50_and_p95() -> None:
    data = inputs()
    given = latency_from_marks(data.turns, rtt_samples_ms=[20.0, 40.0])
    lines = section(render_public_log(inputs(latency=given)), "Latency")
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["e2e"][:2] == [str(given["e2e"]["p50"]), str(given["e2e"]["p95"])]
    assert rows["llm_websocket_network_rtt"][:2] == ["30", "39"]
    assert set(rows) == {"e2e", "asr", "llm", "llm_websocket_network_rtt", "tts"}


def test_engine_log_on_call_clock() -> None:
    lines = section(render_public_log(inputs()), "LLM engine log")
    assert lines == [
        '   +2.300 s  llm_request  response_id=1 model="gpt-4o" messages=3',
        '   +2.900 s  retry  response_id=1 error="timeout"',
    ]


def test_tool_calls_with_arguments_and_results() -> None:
    lines = section(render_public_log(inputs()), "Tool calls")
    assert lines == [
        "get_balance  id=tc_1  type=custom",
        '  arguments: {"account": "42"}',
        '  result (successful=true): {"balance": 12.5}',
        "transfer  id=tc_2",
        "  arguments: {}",
        "  result (successful=false): no such number",
    ]


def test_errors_and_notes_listed() -> None:
    text = render_public_log(inputs())
    assert section(text, "Errors") == ["- end_detail: llm websocket closed (1011)"]
    assert section(text, "Notes") == ["- post-call analysis: summary skipped"]


def test_huge_payload_truncated_with_marker() -> None:
    huge = LoggedMessage(T0 + 1.0, "from_llm", 1, {"content": "x" * 10_000})
    lines = section(render_public_log(inputs(llm_messages=[huge])), "LLM WebSocket messages")
    assert len(lines) == 1
    assert lines[0].endswith("...[truncated: 10014 chars in all]")
    assert len(lines[0]) < PAYLOAD_LIMIT + 100


def test_rendering_is_stable_and_plain() -> None:
    first = render_public_log(inputs())
    assert first == render_public_log(inputs())
    assert "\x1b" not in render_public_log(inputs(errors=["\x1b[31mred\x1b[0m\nsecond line"]))
    assert "- \\x1b[31mred\\x1b[0m\\nsecond line" in render_public_log(
        inputs(errors=["\x1b[31mred\x1b[0m\nsecond line"])
    )
    first.encode("utf-8")


def test_empty_sections_say_none() -> None:
    text = render_public_log(
        LogInputs(call={"call_id": "call_x"}, started_at=T0, turns=[], transcript_with_tool_calls=[])
    )
    for title in (
        "Turns (call clock)",
        "LLM WebSocket messages",
        "LLM engine log",
        "Tool calls",
        "Errors",
        "Latency",
        "Notes",
    ):
        assert section(text, title) == ["(none)"], title
