"""`Conversation`: one live call's turn-taking, barge-in, reminders, limits and latency marks.

Transport-agnostic: audio frames come in as an async iterator, audio and events go out through
an `OutputSink`. Everything runs on one event loop; control decisions (speech started, interrupt,
timers) are synchronous state changes plus task cancellation, and every await on a provider or
the client is bounded by a deadline (directly or through a `SerialLane`).
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from voxline.clock import Clock
from voxline.conversation.audio import InputResampler
from voxline.conversation.backchannel import Backchanneler
from voxline.conversation.config import ConversationConfig
from voxline.conversation.lanes import SerialLane
from voxline.conversation.listener import Detection, Segment, SpeechDetector, SpeechEvent
from voxline.conversation.marks import TurnMarks
from voxline.conversation.output import OutputSink, Playback, PlaybackHooks
from voxline.conversation.result import ConversationResult
from voxline.conversation.transcript import TranscriptLog
from voxline.conversation.turns import PendingSegment, assemble_turn, last_text_looks_incomplete
from voxline.llm.interfaces import (
    AgentConfigUpdate,
    AgentInterrupt,
    LlmEnded,
    LlmEvent,
    MetadataEvent,
    ResponseChunk,
    ResponseEngine,
    ToolCallInvocation,
    ToolCallResult,
    Utterance,
)
from voxline.speech.interfaces import ENGINE_SAMPLE_RATE, Asr, Transcript, Tts, Vad

if TYPE_CHECKING:
    from voxline.conversation.recorder import Recorder

log = logging.getLogger(__name__)


VAD_THREADS = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="voxline-vad")
"""Model inference stays off the event loop: VAD frames of every call run in this bounded pool
(one frame per call at a time, so each call's frames keep their order)."""


class Conversation:
    """One call's engine; build one per call and `await run(frames)` once.

    Timers all read the injected `Clock` (one tick loop); response ids increase from 0 (the begin
    message); the Playback of the current id is the only thing allowed to speak.
    """

    def __init__(
        self,
        config: ConversationConfig,
        *,
        vad: Vad,
        asr: Asr,
        tts: Tts,
        llm: ResponseEngine,
        clock: Clock,
        sink: OutputSink,
        call: dict[str, Any] | None = None,
        recorder: "Recorder | None" = None,
        on_transcript: "Callable[[list[Utterance], list[dict[str, Any]]], None] | None" = None,
    ) -> None:
        self.config = config
        self._vad, self._asr, self._tts, self._llm = vad, asr, tts, llm
        self._clock, self._sink = clock, sink
        self._call = call or {}
        self._recorder = recorder
        self._on_transcript = on_transcript
        self._samples_in = 0  # 16 kHz samples received: the user channel's clock
        self._log = TranscriptLog()
        self._turns: list[TurnMarks] = []
        self._marks_by_id: dict[int, TurnMarks] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended: asyncio.Future[tuple[str, str]] | None = None
        self._early_end: tuple[str, str] | None = None
        self._call_start = 0.0
        self._current_id = 0
        self._response_open = True  # waiting for the begin message (response_id 0)
        self._playback: Playback | None = None
        self._barge: Playback | None = None  # paused while we decide whether the user interrupts
        self._ignored_speech = False  # user speech over uninterruptible agent audio
        self._user_marks: TurnMarks | None = None
        self._segments: list[PendingSegment] = []
        self._floor_takes = 0
        """How often the user took the floor: a turn decision that saw it change while waiting
        for the ASR knows the user went on speaking."""
        self._turn_deadline: float | None = None
        self._turn_extended = False
        self._owes_reply = False  # a reply was abandoned because the user took the floor
        self._deciding = False
        self._turntaking: str | None = None
        self._agent_done_at: float | None = None
        self._reminders_sent = 0
        self._last_activity = 0.0
        self._got_audio = False
        self._audio_zero_s = 0.0  # call time of the first input frame: user words' offset
        self._detector: SpeechDetector | None = None
        self._backchannel = Backchanneler(self._speak_backchannel)

    # -- public API -----------------------------------------------------------------------------
    def request_end(self, reason: str, detail: str = "") -> None:
        """Stop the call from outside (stop-call → manual_stopped, an external duration limit)."""
        self._end(reason, detail)

    def update_agent(self, fields: dict[str, Any]) -> None:
        """Apply mid-call agent changes (API update or the LLM's update_agent) from now on."""
        self.config = self.config.updated(fields)

    def add_context(self, content: str) -> None:
        """update-live-call `additional_context`: an `injected` transcript item the next reply sees."""
        if self._ended is None or self._ending:
            return
        self._log.add_injected(content, self._now() - self._call_start)
        self._send_update()

    def trigger_response(self) -> bool:
        """update-live-call `trigger_response`: regenerate now. Interrupts the agent when it may be
        interrupted; does nothing while the user speaks or while the agent may not be interrupted.
        Returns whether a response was requested."""
        if self._ended is None or self._ending or self._detector is None:
            return False
        if self._detector.in_speech or self._segments or self._deciding:
            return False
        pb = self._playback
        if pb is not None and pb.playing:
            if not self._interruptible(pb):
                return False
            pb.marks.mark("interruption", self._now())
            pb.cancel()
            self._commit_played(pb)
            self._playback = None
            self._spawn(self._clear_output())
        self._request(TurnMarks(), reminder=False)
        return True

    async def run(self, frames: AsyncIterable[bytes]) -> ConversationResult:
        """Drive the call until it ends; `frames` ending means the client hung up."""
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        if self._early_end is not None:
            self._ended.set_result(self._early_end)
        self._call_start = self._last_activity = self._clock.monotonic()
        cfg = self.config
        self._detector = SpeechDetector(
            self._vad.frame_samples, cfg.vad_threshold, cfg.min_speech_s, cfg.speech_stop_s, cfg.pre_roll_s
        )
        self._llm_lane = SerialLane(cfg.llm_send_timeout_s, self._on_llm_send_error)
        self._event_lane = SerialLane(cfg.sink_timeout_s, self._on_sink_error)
        begin = TurnMarks(response_id=0)
        self._turns.append(begin)
        self._marks_by_id[0] = begin
        self._spawn(self._llm_lane.run())
        self._spawn(self._event_lane.run())
        self._spawn(self._read_llm())
        self._spawn(self._read_input(frames))
        self._spawn(self._tick())
        reason, detail = await self._ended
        await self._shutdown()
        return ConversationResult(
            disconnection_reason=reason,
            transcript=self._log.transcript(),
            transcript_with_tool_calls=self._log.with_tool_calls(),
            turns=list(self._turns),
            detail=detail,
            started_at=self._call_start,
            duration_s=self._clock.monotonic() - self._call_start,
        )

    # -- plumbing -------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock.monotonic()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if self._ending:  # already ended with a precise reason (e.g. error_asr)
                log.debug("task failed after the end: %r", exc)
                return
            log.error("conversation task failed", exc_info=exc)
            self._end("error_unknown", repr(exc))

    def _end(self, reason: str, detail: str = "") -> None:
        if self._ended is None:
            self._early_end = self._early_end or (reason, detail)
        elif not self._ended.done():
            self._ended.set_result((reason, detail))

    @property
    def _ending(self) -> bool:
        return self._ended is not None and self._ended.done()

    def _on_llm_send_error(self, exc: BaseException) -> None:
        self._end("error_llm_websocket_runtime", f"send to response engine failed: {exc!r}")

    def _on_sink_error(self, exc: BaseException) -> None:
        self._end("error_unknown", f"send to client failed: {exc!r}")

    def _send_event(self, event: dict[str, Any]) -> None:
        self._event_lane.submit(lambda: self._sink.send_event(event))

    def _send_update(self, turntaking: Literal["agent_turn", "user_turn"] | None = None) -> None:
        """update_only to the LLM (turntaking only when the floor changes) and `update` to the client."""
        if turntaking is not None:
            if turntaking == self._turntaking:
                turntaking = None
            else:
                self._turntaking = turntaking
        transcript, woven = self._log.transcript(), self._log.with_tool_calls()
        self._llm_lane.submit(lambda: self._llm.update(transcript, turntaking, transcript_with_tool_calls=woven))
        self._send_event({"event_type": "update", "transcript": transcript})
        if self._on_transcript is not None and turntaking is not None:
            self._on_transcript(transcript, woven)  # turn changes only (transcript_updated webhooks)

    async def _shutdown(self) -> None:
        self._backchannel.stop()
        pb = self._playback
        if pb is not None:
            pb.cancel()
            self._commit_played(pb)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if pb is not None:
            await pb.wait_closed()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.config.llm_send_timeout_s):
                await self._llm.close()

    # -- input lane -----------------------------------------------------------------------------
    async def _read_input(self, frames: AsyncIterable[bytes]) -> None:
        resampler = InputResampler(self.config.input_sample_rate, ENGINE_SAMPLE_RATE)
        loop = asyncio.get_running_loop()
        stream = self._vad.new_stream()
        n = self._vad.frame_samples
        pending = np.zeros(0, np.float32)
        async for data in frames:
            if not self._got_audio:
                self._got_audio = True
                self._audio_zero_s = self._now() - self._call_start
            chunk = resampler.push(data)
            if self._recorder is not None and len(chunk):
                self._recorder.user_audio(chunk, self._audio_zero_s + self._samples_in / ENGINE_SAMPLE_RATE)
            self._samples_in += len(chunk)
            pending = np.concatenate([pending, chunk])
            while len(pending) >= n:
                frame, pending = pending[:n], pending[n:]
                probability = await loop.run_in_executor(VAD_THREADS, stream.probability, frame)
                self._on_vad_frame(frame, probability)
            if self._ending:
                return
        self._end("user_hangup")

    def _on_vad_frame(self, frame: np.ndarray, probability: float) -> None:
        assert self._detector is not None
        for detection in self._detector.push(frame, probability):
            self._on_detection(detection)
        if self._detector.in_speech:
            self._last_activity = self._now()
        barge = self._barge
        if barge is not None and barge is self._playback and barge.playing:
            threshold = self.config.interrupt_after_s
            if threshold is not None and self._detector.speech_s >= threshold:
                self._interrupt(barge)

    def _on_detection(self, d: Detection) -> None:
        assert self._detector is not None
        now = self._now()
        happened = now - (self._detector.position_s - d.at_s)  # undo the hysteresis delay
        pb = self._playback
        agent_talking = pb is not None and pb.playing
        if d.event is SpeechEvent.ONSET:
            if self._user_marks is None:
                self._user_marks = TurnMarks()
                self._user_marks.mark("user_speech_start", happened)
            if agent_talking and pb is not None and self._interruptible(pb):
                pb.pause()  # pause, then decide (a cough resumes where it paused)
                self._barge = pb
            elif agent_talking:
                self._ignored_speech = True
            elif pb is not None and not pb.started and not pb.cancelled:
                self._hold(pb)
        elif d.event is SpeechEvent.CONFIRMED:
            if agent_talking or self._ignored_speech:
                return
            self._user_takes_floor()
        elif d.event is SpeechEvent.ABORTED:
            self._resume_after_noise()
            self._ignored_speech = False
            if not self._segments and not self._deciding and self._turn_deadline is None:
                self._user_marks = None
        elif d.event is SpeechEvent.STOPPED:
            ignored, self._ignored_speech = self._ignored_speech, False
            if self._barge is not None or agent_talking:
                # Speech that did not interrupt the agent: not a turn (backchannel, noise).
                self._resume_after_noise()
                if not self._segments and not self._deciding and self._turn_deadline is None:
                    self._user_marks = None
                return
            if ignored:  # began over uninterruptible agent audio, outlasted it: the user's turn now
                self._user_takes_floor()
            assert d.segment is not None
            if self._user_marks is None:
                self._user_marks = TurnMarks()
            self._user_marks.user_speech_end = happened
            task = self._spawn(self._transcribe(d.segment))
            self._segments.append(PendingSegment(d.segment, task))
            self._turn_deadline = now + self.config.turn_wait_s
            self._turn_extended = False

    def _hold(self, pb: Playback) -> None:
        """A reply about to start while the user may be speaking: it waits until the speech is
        either confirmed (the user takes the floor and the reply is dropped, to be asked again with
        everything the user said) or turns out to be noise (the reply starts). Without this, a
        reply that started between the onset and its confirmation talked over the user, and the
        user's words were taken for a backchannel and lost."""
        pb.pause()
        self._barge = pb

    def _interruptible(self, pb: Playback) -> bool:
        return self.config.interrupt_after_s is not None and not pb.flags.no_interruption_allowed

    def _resume_after_noise(self) -> None:
        barge, self._barge = self._barge, None
        if barge is not None and not barge.cancelled:
            barge.resume()

    def _user_takes_floor(self) -> None:
        """Confirmed user speech with the agent silent: hold the turn decision, abandon a reply
        that has not started playing (a newer request will supersede it), reset reminders."""
        self._floor_takes += 1
        self._turn_deadline = None
        self._agent_done_at = None
        self._reminders_sent = 0
        pb = self._playback
        if pb is not None and not pb.started:
            pb.cancel()
            self._playback = None
            if self._barge is pb:
                self._barge = None
            self._response_open = False
            self._owes_reply = True
        elif self._response_open:
            self._response_open = False
            self._owes_reply = self._current_id > 0  # an unanswered begin message is not owed
        if self._turntaking != "user_turn":
            self._send_update("user_turn")

    async def _transcribe(self, segment: Segment) -> tuple[Transcript, float]:
        """ASR starts at speech end, not at the turn decision; its deadline is enforced here."""
        try:
            async with asyncio.timeout(self.config.asr_timeout_s):
                result = await self._asr.transcribe(segment.audio)
        except Exception as exc:
            self._end("error_asr", repr(exc))
            raise
        return result, self._now()

    async def _decide_turn(self) -> None:
        segments, self._segments = self._segments, []
        marks = self._user_marks or TurnMarks()
        self._user_marks = None
        marks.turn_decision = self._now()
        floor_takes = self._floor_takes
        try:
            turn = await assemble_turn(segments, self._audio_zero_s)
        except Exception as exc:
            self._end("error_asr", repr(exc))
            return
        finally:
            self._deciding = False
        marks.asr_final = turn.asr_final
        if self._ending:
            return
        if self._floor_takes != floor_takes:
            # The caller went on speaking while the ASR finished (a slow ASR under load): the turn
            # is not over. Its segments join the next decision, which the new speech's end sets up;
            # asking now would answer half the utterance, and that reply, held while the caller
            # spoke, would start when they stop and swallow what they said meanwhile.
            self._segments = segments + self._segments
            marks.turn_decision = marks.asr_final = None
            if self._user_marks is None:
                self._user_marks = marks
            elif marks.user_speech_start is not None:
                self._user_marks.user_speech_start = marks.user_speech_start
            return
        if not turn.text:
            if self._owes_reply:  # noise cost the user a pending reply: ask again
                self._request(marks, reminder=False)
            return  # noise that VAD took for speech: no turn
        self._log.add_user(turn.text, turn.words)
        self._request(marks, reminder=False)

    # -- responses ------------------------------------------------------------------------------
    def _request(self, marks: TurnMarks, *, reminder: bool) -> None:
        """response_required / reminder_required with the next id; supersedes everything before."""
        self._backchannel.stop()
        old = self._playback
        if old is not None:
            old.cancel()
            self._commit_played(old)
            self._playback = None
        self._owes_reply = False
        self._current_id += 1
        rid = self._current_id
        marks.response_id, marks.reminder = rid, reminder
        marks.mark("llm_request", self._now())
        self._turns.append(marks)
        self._marks_by_id[rid] = marks
        self._response_open = True
        transcript, woven = self._log.transcript(), self._log.with_tool_calls()
        self._llm_lane.submit(
            lambda: self._llm.request_response(rid, transcript, reminder=reminder, transcript_with_tool_calls=woven)
        )

    def _new_playback(self, rid: int, start_at: float | None = None) -> Playback:
        """The only Playback allowed to speak from now on (one voice at a time)."""
        self._backchannel.stop()
        if (old := self._playback) is not None:
            old.cancel()
            self._commit_played(old)
        pb = Playback(
            rid,
            tts=self._tts,
            config=self.config,
            clock=self._clock,
            sink=self._sink,
            call_start=self._call_start,
            marks=self._marks_by_id.setdefault(rid, TurnMarks(response_id=rid)),
            hooks=PlaybackHooks(self._on_first_frame, self._on_progress, self._on_finished, self._on_failed),
            start_at=start_at,
            recorder=self._recorder,
        )
        self._playback = pb
        if self._detector is not None and self._detector.in_speech and not self._ignored_speech:
            self._hold(pb)
        return pb

    def _on_chunk(self, ev: ResponseChunk) -> None:
        if ev.response_id != self._current_id or not self._response_open:
            return  # superseded or already complete: dropped silently (spec E.4.5)
        marks = self._marks_by_id.setdefault(ev.response_id, TurnMarks(response_id=ev.response_id))
        now = self._now()
        marks.mark("llm_first_token", now)
        pb = self._playback
        if pb is None or pb.response_id != ev.response_id or pb.interrupt_id is not None:
            start_at = None
            if ev.response_id == 0:
                start_at = self._call_start + self.config.begin_message_delay_ms / 1000
            pb = self._new_playback(ev.response_id, start_at)
        if ev.no_interruption_allowed:
            pb.flags.no_interruption_allowed = True
        spoken = self._add_agent_text(pb, ev.content)
        if ev.content_complete:
            self._response_open = False
            transfer = ev.transfer_number is not None
            spoken += pb.complete(
                end_call=ev.end_call or transfer, end_reason="call_transfer" if transfer else "agent_hangup"
            )
        if spoken:
            marks.mark("first_speakable_chunk", now)

    def _on_agent_interrupt(self, ev: AgentInterrupt) -> None:
        """agent_interrupt: speak now, cutting off whatever plays; same interrupt_id continues."""
        pb = self._playback
        if pb is None or pb.interrupt_id != ev.interrupt_id:
            if pb is not None:
                pb.cancel()
                self._commit_played(pb)
                if pb.started:
                    self._send_event({"event_type": "agent_stop_talking"})
            self._response_open = False
            pb = self._new_playback(self._current_id)
            pb.interrupt_id = ev.interrupt_id
        if ev.no_interruption_allowed:
            pb.flags.no_interruption_allowed = True
        self._add_agent_text(pb, ev.content)
        if ev.content_complete:
            pb.complete(end_call=ev.end_call)

    def _interrupt(self, pb: Playback) -> None:
        """Barge-in: stop the agent now and keep only what was played."""
        pb.marks.mark("interruption", self._now())
        pb.cancel()
        self._playback = None
        self._barge = None
        self._response_open = False  # the outstanding LLM reply is abandoned too
        self._commit_played(pb)
        self._agent_done_at = None
        self._spawn(self._clear_output())
        self._user_takes_floor()  # tells the LLM: update_only with turntaking "user_turn"

    async def _clear_output(self) -> None:
        """Clear first (it is what the user hears), then tell the client the agent stopped."""
        async with asyncio.timeout(self.config.sink_timeout_s):
            await self._sink.clear()
        self._send_event({"event_type": "agent_stop_talking"})

    def _add_agent_text(self, pb: Playback, content: str) -> int:
        """Queue the LLM's text for speech; the first text of a segment places its transcript item
        (empty, so unseen, until its audio plays), so tool calls that follow come after it."""
        if content.strip() and not pb.segment_has_utterance:
            pb.utterances.append(self._log.open_agent(pb.response_id))
            pb.segment_has_utterance = True
        return pb.add_text(content)

    def _split_agent_turn(self) -> None:
        """A tool call in the middle of the current response: what follows is a new utterance."""
        pb = self._playback
        if (
            pb is not None
            and pb.response_id == self._current_id
            and pb.interrupt_id is None
            and pb.segment_has_utterance
            and not pb.flags.content_complete
        ):
            pb.add_break()

    def _commit_played(self, pb: Playback) -> None:
        """Keep in the transcript exactly what was played of each segment; drop the rest."""
        segments = pb.played_segments()
        for i, item in enumerate(pb.utterances):
            content, words = segments[i] if i < len(segments) else ("", [])
            if content:
                self._log.set_agent(item, content, words)
            else:
                self._log.drop(item)
        pb.utterances = []

    # -- playback hooks -------------------------------------------------------------------------
    async def _on_first_frame(self, pb: Playback) -> None:
        self._agent_done_at = None
        self._send_update("agent_turn")
        self._send_event({"event_type": "agent_start_talking"})  # same lane as stop: order kept
        await self._event_lane.flush()  # and the client hears of it before the first frame arrives

    def _on_progress(self, pb: Playback) -> None:
        for item, (content, words) in zip(pb.utterances, pb.played_segments(), strict=False):
            if content:
                self._log.set_agent(item, content, words)

    def _on_finished(self, pb: Playback) -> None:
        if self._playback is pb:
            self._playback = None
        if self._barge is pb:
            self._barge = None
        self._commit_played(pb)
        if pb.started:
            self._agent_done_at = self._now()
            self._send_event({"event_type": "agent_stop_talking"})
            self._send_update()
        if pb.flags.end_call:
            self._end(pb.flags.end_reason)

    def _on_failed(self, pb: Playback, exc: BaseException) -> None:
        """TTS or the client stalled for this response: end the turn (keep what was said)."""
        log.warning("response %s failed: %r", pb.response_id, exc)
        pb.cancel()
        self._commit_played(pb)
        if self._playback is pb:
            self._playback = None
        if pb.started:
            self._agent_done_at = self._now()
            self._send_event({"event_type": "agent_stop_talking"})

    # -- backchannel ----------------------------------------------------------------------------
    def _speak_backchannel(self, word: str) -> Playback:
        async def no_start(pb: Playback) -> None:
            return None

        def failed(pb: Playback, exc: BaseException) -> None:
            self._backchannel.done(pb)

        pb = Playback(
            self._current_id,
            tts=self._tts,
            config=self.config,
            clock=self._clock,
            sink=self._sink,
            call_start=self._call_start,
            marks=TurnMarks(),
            hooks=PlaybackHooks(no_start, lambda pb: None, self._backchannel.done, failed),
            recorder=self._recorder,
        )
        pb.add_text(word)
        pb.complete()
        return pb

    # -- LLM lane -------------------------------------------------------------------------------
    async def _read_llm(self) -> None:
        try:
            async with asyncio.timeout(self.config.llm_send_timeout_s):
                await self._llm.start(self._call)
        except Exception as exc:
            self._end("error_llm_websocket_open", repr(exc))
            return
        async for event in self._llm.events():
            self._on_llm_event(event)
            if isinstance(event, LlmEnded):
                return
        self._end("error_llm_websocket_lost_connection", "response engine event stream ended")

    def _on_llm_event(self, event: LlmEvent) -> None:
        if isinstance(event, ResponseChunk):
            self._on_chunk(event)
        elif isinstance(event, AgentInterrupt):
            self._on_agent_interrupt(event)
        elif isinstance(event, ToolCallInvocation):
            self._split_agent_turn()
            self._log.add_tool_invocation(event)
        elif isinstance(event, ToolCallResult):
            self._split_agent_turn()
            self._log.add_tool_result(event)
        elif isinstance(event, AgentConfigUpdate):
            self.update_agent(event.fields)
        elif isinstance(event, MetadataEvent):
            self._send_event({"event_type": "metadata", "metadata": event.metadata})
        elif isinstance(event, LlmEnded):
            self._end(event.reason, event.detail)

    # -- timers ---------------------------------------------------------------------------------
    async def _tick(self) -> None:
        """One clock for every timer: turn decision, reminders, silence, duration, no audio."""
        while not self._ending:
            await asyncio.sleep(self.config.tick_s)
            self._check_timers(self._now())

    def _check_timers(self, now: float) -> None:
        cfg = self.config
        elapsed = now - self._call_start
        if not self._got_audio and elapsed >= cfg.no_audio_timeout_s:
            self._end("error_no_audio_received", f"no audio in {cfg.no_audio_timeout_s} s")
            return
        if elapsed * 1000 >= cfg.max_call_duration_ms:
            self._end("max_duration_reached")
            return
        if self._playback is not None and self._playback.playing:
            self._last_activity = now
        if (now - self._last_activity) * 1000 >= cfg.end_call_after_silence_ms:
            self._end("inactivity")
            return
        assert self._detector is not None
        in_speech = self._detector.in_speech
        if in_speech and self._playback is None and not self._response_open and self._user_marks is not None:
            self._backchannel.maybe_speak(cfg, now, self._user_marks.user_speech_start)
        if self._turn_deadline is not None and now >= self._turn_deadline and not in_speech and not self._deciding:
            if not self._turn_extended and last_text_looks_incomplete(self._segments):
                self._turn_extended = True
                self._turn_deadline = now + cfg.incomplete_turn_extra_s
                return
            self._turn_deadline = None
            self._deciding = True
            self._spawn(self._decide_turn())
            return
        if (
            self._agent_done_at is not None
            and self._reminders_sent < cfg.reminder_max_count
            and (now - self._agent_done_at) * 1000 >= cfg.reminder_trigger_ms
            and not in_speech
            and not self._segments
            and not self._deciding
            and not self._response_open
            and self._playback is None
        ):
            self._reminders_sent += 1
            self._agent_done_at = None
            self._request(TurnMarks(), reminder=True)
