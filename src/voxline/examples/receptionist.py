"""EXAMPLE LLM server: a scripted receptionist for a made-up dental clinic ("Bright Smile Dental").

This is not a language model. It is the smallest useful thing that speaks the LLM WebSocket
protocol (spec E) from the server side, so a developer can hear a Voxline agent talk end to end
with no external service, and read how their own LLM server should behave: send `config`, send
the begin message (`response_id` 0), answer each `response_required` / `reminder_required` under
its id in two or more streamed chunks, echo `ping_pong`, and set `end_call` to hang up.

The conversation logic (`run_receptionist`) is written against a two-method `Channel`, so the same
code runs under the standalone `websockets` server here and under the FastAPI route
`/examples/receptionist/llm-websocket/{call_id}` (voxline.api.routes.examples).

Run on its own:  python -m voxline.examples.receptionist --host 127.0.0.1 --port 8765
then point an agent's response engine at `ws://127.0.0.1:8765/llm-websocket`.
"""

import argparse
import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voxline.schemas.llm_websocket import (
    CallDetailsRequest,
    ConfigMessage,
    LlmConfig,
    MalformedMessage,
    PingPongMessage,
    PingPongRequest,
    ReminderRequiredRequest,
    ResponseMessage,
    ResponseRequiredRequest,
    parse_platform_message,
)

__all__ = ["Channel", "Receptionist", "run_receptionist", "serve_receptionist", "split_into_chunks"]

log = logging.getLogger(__name__)

CLINIC = "Bright Smile Dental"
PATH_PREFIX = "/llm-websocket/"
GOODBYES = re.compile(r"\b(bye|goodbye|good bye|that's all|that is all)\b", re.IGNORECASE)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "tomorrow", "today")
NAME_LEAD = re.compile(r"^(?:(?:hi|hello|hey)[,!.]?\s+)?(?:my name is|my name's|i am|i'm|this is|it's|it is)\s+", re.I)


class Channel(Protocol):
    """What the conversation needs of a transport: JSON text frames in and out."""

    async def send_text(self, text: str) -> None: ...

    async def receive_text(self) -> str | None:
        """The next text frame, or None once the platform has gone."""
        ...


def split_into_chunks(text: str) -> list[str]:
    """Split a reply the way an LLM would stream it: sentence by sentence, always 2+ pieces."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    if len(sentences) < 2:
        words = text.split(" ")
        middle = max(1, len(words) // 2)
        sentences = [" ".join(words[:middle]), " ".join(words[middle:])]
    return [s + " " for s in sentences[:-1]] + [sentences[-1]]


@dataclass
class Receptionist:
    """The script: greet, learn the caller's name, then a preferred day, then wrap up."""

    name: str | None = None
    day: str | None = None

    def greeting(self) -> str:
        return f"Hello, thank you for calling {CLINIC}. This is an example receptionist. May I have your name?"

    def question(self) -> str:
        """The question the script is waiting on, used again by reminders."""
        if self.name is None:
            return "May I have your name?"
        if self.day is None:
            return "Which day would suit you for a visit?"
        return "Is there anything else I can help with?"

    def reply(self, heard: str) -> tuple[str, bool]:
        """Answer the last user utterance; returns (text, end_call)."""
        heard = heard.strip()
        if not heard:
            return f"Sorry, I did not catch that. {self.question()}", False
        echo = f"You said: {heard}" if heard[-1] in ".!?" else f"You said: {heard}."
        if GOODBYES.search(heard):
            who = f", {self.name}" if self.name else ""
            return f"{echo} Thank you for calling {CLINIC}{who}. Goodbye!", True
        if self.name is None:
            self.name = _extract_name(heard)
            return f"{echo} Nice to meet you, {self.name}. Which day would suit you for a visit?", False
        if self.day is None:
            self.day = _extract_day(heard)
            return (
                f"{echo} I have noted {self.day} for {self.name}. Is there anything else I can help with?",
                False,
            )
        return f"{echo} In this example I can only take appointment requests. Say goodbye when you are done.", False

    def reminder(self) -> str:
        return f"Are you still there? {self.question()}"


def _extract_name(heard: str) -> str:
    words = NAME_LEAD.sub("", heard).strip(" .,!?").split()
    return " ".join(w.capitalize() for w in words[:3]) or "there"


def _extract_day(heard: str) -> str:
    for word in re.findall(r"[a-z]+", heard.lower()):
        if word in DAYS:
            return word.capitalize()
    return heard.strip(" .,!?")


def _last_user_utterance(transcript: list[dict[str, Any]]) -> str:
    for utterance in reversed(transcript):
        if utterance.get("role") == "user":
            return str(utterance.get("content") or "")
    return ""


async def _stream(channel: Channel, response_id: int, text: str, *, end_call: bool = False) -> None:
    chunks = split_into_chunks(text)
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        message = ResponseMessage(
            response_id=response_id, content=chunk, content_complete=last, end_call=True if last and end_call else None
        )
        await channel.send_text(json.dumps(message.to_wire()))


async def run_receptionist(channel: Channel) -> None:
    """One call's conversation, from the server's side of the LLM WebSocket, until the platform leaves."""
    script = Receptionist()
    config = ConfigMessage(config=LlmConfig(auto_reconnect=True, call_details=True))
    await channel.send_text(json.dumps(config.to_wire()))
    await _stream(channel, 0, script.greeting())
    while (text := await channel.receive_text()) is not None:
        try:
            message = parse_platform_message(text)
        except (MalformedMessage, ValueError) as exc:
            log.warning("receptionist: ignored a message it could not read: %s", exc)
            continue
        if isinstance(message, PingPongRequest):
            await channel.send_text(json.dumps(PingPongMessage(timestamp=message.timestamp).to_wire()))
        elif isinstance(message, CallDetailsRequest):
            pass  # the script needs nothing from the call object
        elif isinstance(message, ReminderRequiredRequest):
            await _stream(channel, message.response_id, script.reminder())
        elif isinstance(message, ResponseRequiredRequest):
            reply, end_call = script.reply(_last_user_utterance(message.transcript))
            await _stream(channel, message.response_id, reply, end_call=end_call)
        # update_only needs no answer.


# --- standalone host: a `websockets` server --------------------------------------------------------


class _WebsocketsChannel:
    """`Channel` over a `websockets` server connection."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def receive_text(self) -> str | None:
        while True:
            try:
                frame = await self.ws.recv()
            except ConnectionClosed:
                return None
            if isinstance(frame, str):
                return frame


def _check_path(connection: ServerConnection, request: Request) -> Response | None:
    """Only `/llm-websocket/{call_id}` is served; anything else is a 404 before the upgrade."""
    path = request.path.split("?", 1)[0]
    call_id = path[len(PATH_PREFIX) :] if path.startswith(PATH_PREFIX) else ""
    if not call_id or "/" in call_id:
        return connection.respond(404, "Not Found: use /llm-websocket/{call_id}\n")
    return None


async def _handle(ws: ServerConnection) -> None:
    try:
        await run_receptionist(_WebsocketsChannel(ws))
    except ConnectionClosed:
        pass


async def serve_receptionist(host: str = "127.0.0.1", port: int = 8765) -> Server:
    """Start the example server (already listening when this returns); `port=0` picks a free one."""
    return await serve(_handle, host, port, process_request=_check_path, compression=None)


async def _main(host: str, port: int) -> None:
    server = await serve_receptionist(host, port)
    bound = next(iter(server.sockets)).getsockname()[1]
    print(f"Example receptionist (not an LLM) at ws://{host}:{bound}{PATH_PREFIX}{{call_id}}", flush=True)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Voxline's EXAMPLE LLM server: a scripted dental receptionist.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        asyncio.run(_main(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
