"""A user turn: the speech segments since the user took the floor and their ASR results.

Segments are transcribed as soon as each ends (not at the turn decision); the turn is assembled
into one Retell utterance with words on the call clock when the decision comes.
"""

import asyncio
from dataclasses import dataclass

from voxline.conversation.endpointing import looks_incomplete
from voxline.conversation.listener import Segment
from voxline.conversation.transcript import WordDict, word_dict
from voxline.speech.interfaces import Transcript


@dataclass
class PendingSegment:
    segment: Segment
    task: "asyncio.Task[tuple[Transcript, float]]"
    """ASR of the segment: (transcript, monotonic time it finished)."""


def last_text_looks_incomplete(segments: list[PendingSegment]) -> bool:
    """True if the latest segment's ASR is already in and sounds unfinished ("my number is")."""
    if not segments:
        return False
    task = segments[-1].task
    if not task.done() or task.cancelled() or task.exception() is not None:
        return False
    return looks_incomplete(task.result()[0].text)


@dataclass
class AssembledTurn:
    text: str
    words: list[WordDict]
    asr_final: float | None


async def assemble_turn(segments: list[PendingSegment], audio_zero_s: float) -> AssembledTurn:
    """Await every segment's ASR (raises what the ASR raised) and join them. `audio_zero_s` is
    the call time of the first input frame: segment times are on the input audio clock."""
    texts: list[str] = []
    words: list[WordDict] = []
    asr_final: float | None = None
    for pending in segments:
        result, done_at = await pending.task
        asr_final = max(asr_final or 0.0, done_at)
        text = result.text.strip()
        if not text:
            continue
        texts.append(text)
        start = audio_zero_s + pending.segment.start_s
        if result.words:
            words.extend(word_dict(w.text, start + w.start, start + w.end) for w in result.words)
        else:
            words.append(word_dict(text, start, audio_zero_s + pending.segment.end_s))
    return AssembledTurn(" ".join(texts), words, asr_final)
