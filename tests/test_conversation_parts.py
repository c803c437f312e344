"""The conversation engine's small parts: config mapping, text splitting, endpointing, VAD hysteresis."""

import numpy as np
import pytest

from voxline.conversation import ConversationConfig
from voxline.conversation.endpointing import looks_incomplete
from voxline.conversation.listener import SpeechDetector, SpeechEvent
from voxline.conversation.output import estimate_words
from voxline.conversation.segmenter import TextSegmenter


def test_config_from_agent_takes_retell_defaults_and_fields() -> None:
    default = ConversationConfig.from_agent({"voice_id": "v"}, 48_000, 24_000, {"name": "Ann"})
    assert (default.responsiveness, default.interruption_sensitivity, default.reminder_max_count) == (1.0, 1.0, 1)
    assert default.reminder_trigger_ms == 10_000 and default.end_call_after_silence_ms == 600_000
    assert default.dynamic_variables == {"name": "Ann"} and default.input_sample_rate == 48_000
    agent = {"voice_id": "v", "responsiveness": 0.5, "backchannel_words": ["ok"], "volume": None, "foo": 1}
    cfg = ConversationConfig.from_agent(agent, 16_000, 16_000, None, tick_s=0.001)
    assert cfg.responsiveness == 0.5 and cfg.backchannel_words == ("ok",) and cfg.volume == 1.0
    assert cfg.tick_s == 0.001


@pytest.mark.parametrize(("responsiveness", "wait"), [(1.0, 0.2), (0.5, 0.7), (0.0, 1.2)])
def test_responsiveness_maps_to_turn_wait(responsiveness: float, wait: float) -> None:
    assert ConversationConfig(responsiveness=responsiveness).turn_wait_s == pytest.approx(wait)


def test_interruption_sensitivity_maps_to_speech_needed() -> None:
    assert ConversationConfig(interruption_sensitivity=1).interrupt_after_s == pytest.approx(0.12)
    assert ConversationConfig(interruption_sensitivity=0.5).interrupt_after_s == pytest.approx(0.46)
    assert ConversationConfig(interruption_sensitivity=0).interrupt_after_s is None


def test_update_applies_only_mid_call_fields() -> None:
    cfg = ConversationConfig().updated({"reminder_max_count": 3, "voice_id": "other", "backchannel_words": ["hm"]})
    assert cfg.reminder_max_count == 3 and cfg.voice_id == "" and cfg.backchannel_words == ("hm",)


def test_segmenter_splits_at_sentences_and_long_clauses_only() -> None:
    seg = TextSegmenter()
    assert seg.push("Sure. The total is 3.5 dollars") == ["Sure."]
    assert seg.push(", and my number is 555,1234") == ["The total is 3.5 dollars,"]
    assert seg.push(" ok") == []  # "555,1234" is not a clause boundary
    assert seg.flush() == ["and my number is 555,1234 ok"]
    assert seg.flush() == []


def test_the_first_piece_of_a_reply_ends_at_its_first_clause() -> None:
    seg = TextSegmenter()
    assert seg.push("Sure, I can help you with that. What is your booking reference? ") == [
        "Sure,",
        "I can help you with that.",
        "What is your booking reference?",
    ]
    seg = TextSegmenter()
    assert seg.push("Sure") == [] and seg.push(", I can") == ["Sure,"]  # as soon as the comma arrives
    seg = TextSegmenter()
    assert seg.push("Hello there. Yes, it is, and ") == ["Hello there."]  # only before the first sentence ends
    assert TextSegmenter(first_clause_chars=None).push("Sure, I can help you with that. ") == [
        "Sure, I can help you with that."
    ]


@pytest.mark.parametrize(
    ("text", "incomplete"),
    [("my number is 555", True), ("I want to", True), ("wait,", True), ("That's all.", False), ("yes", False)],
)
def test_looks_incomplete(text: str, incomplete: bool) -> None:
    assert looks_incomplete(text) is incomplete


def test_estimated_words_cover_the_duration() -> None:
    words = estimate_words("hi there", 0.7)
    assert [w.text for w in words] == ["hi", "there"]
    assert words[0].start == 0 and words[-1].end == pytest.approx(0.7)


def test_detector_hysteresis_confirms_stops_and_aborts() -> None:
    det = SpeechDetector(512, 0.5, min_speech_s=0.06, stop_s=0.1, pre_roll_s=0.0)
    frame = np.zeros(512, np.float32)
    events = []
    for p in [0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]:
        events += [d.event for d in det.push(frame, float(p))]
    assert events == [
        SpeechEvent.ONSET,
        SpeechEvent.ABORTED,
        SpeechEvent.ONSET,
        SpeechEvent.CONFIRMED,
        SpeechEvent.STOPPED,
    ]
