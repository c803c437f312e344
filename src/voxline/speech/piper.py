"""Piper TTS through a small pool of worker processes (voxline.speech.piper_worker).

piper-tts is GPL-3.0-or-later, so this module never imports it: it starts
`python -m voxline.speech.piper_worker` processes and exchanges length-prefixed frames with
them. Each worker speaks one request at a time, sentence by sentence, so the first chunk is
ready after one sentence (about 0.4 s); closing the iterator or cancelling its task sends a
cancel, and the worker goes back to the pool once the rest is drained.
"""

import asyncio
import contextlib
import importlib
import json
import logging
import math
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from voxline.speech.interfaces import SynthesisChunk
from voxline.speech.piper_worker import decode_header, encode_frame
from voxline.speech.voices import LocalVoice, available_voices

__all__ = ["PiperTts", "TtsError", "TtsWorkerCrashed"]

log = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.5, 2.0
"""Retell's voice_speed range."""
START_TIMEOUT_S = 120.0


class TtsError(RuntimeError):
    """The worker could not speak this text."""


class TtsWorkerCrashed(TtsError):
    """The worker process died during this synthesis (it is being restarted)."""


def voice_files(voice: LocalVoice) -> tuple[str, str]:
    """Model and config paths of a Piper voice (config: the package's config_path(), else model + .json)."""
    model = voice.model_path()
    if model is None:
        raise TtsError(f"voice {voice.voice_id} is not installed")
    module = importlib.import_module(voice.package)
    config = Path(module.config_path()) if hasattr(module, "config_path") else model.with_name(model.name + ".json")
    return str(model), str(config)


class _WorkerProcess:
    """One worker process; a reader task turns its stdout into a queue of frames (None = it died)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.frames: asyncio.Queue[tuple[dict[str, Any], bytes] | None] = asyncio.Queue()
        self.dead = False
        self._reader = asyncio.create_task(self._read_frames(), name=f"piper-worker-{proc.pid}")

    @classmethod
    async def spawn(cls, preload: list[str]) -> "_WorkerProcess":
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voxline.speech.piper_worker",
            *(["--preload", *preload] if preload else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(proc)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                frame = await worker.frames.get()
            if frame is None or not frame[0].get("ready"):
                raise TtsError("Piper worker failed to start")
        except BaseException:
            await worker.stop()
            raise
        return worker

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read_frames(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                size = decode_header(await stdout.readexactly(4))
                header = json.loads(await stdout.readexactly(size))
                pcm = await stdout.readexactly(int(header.get("pcm", 0))) if header.get("pcm") else b""
                self.frames.put_nowait((header, pcm))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self.dead = True
            self.frames.put_nowait(None)

    def send(self, header: dict[str, Any]) -> None:
        """Write one frame; a dead worker shows up as a None frame from the reader, not here."""
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            self.dead = True
            return
        with contextlib.suppress(ConnectionError):
            stdin.write(encode_frame(header))

    async def stop(self) -> None:
        """Close stdin (the worker exits at end of input); kill it if it lingers."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(2.0):
                await self.proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class PiperTts:
    """Implements Tts with Piper voices from the catalog, in `workers` GPL-isolated processes.

    Use `await PiperTts.start(...)` (or `await tts.open()`), then `synthesize()`, then `await close()`.
    Unknown voice ids (e.g. cloud ids on imported agents) fall back to `default_voice_id`.
    """

    def __init__(self, *, workers: int = 2, default_voice_id: str = "piper-joe") -> None:
        if workers < 1:
            raise ValueError("need at least one TTS worker")
        self.worker_count = workers
        self.default_voice_id = default_voice_id
        self._voices = {v.voice_id: v for v in available_voices()}
        self._files = {voice_id: voice_files(v) for voice_id, v in self._voices.items()}
        self._idle: asyncio.Queue[_WorkerProcess] = asyncio.Queue()
        self._all: set[_WorkerProcess] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stopped_early = 0
        """Cancelled requests that the worker stopped before their last sentence."""

    @classmethod
    async def start(cls, *, workers: int = 2, default_voice_id: str = "piper-joe") -> "PiperTts":
        tts = cls(workers=workers, default_voice_id=default_voice_id)
        await tts.open()
        return tts

    def _preload(self) -> list[str]:
        return [path for files in self._files.values() for path in files]

    async def open(self) -> None:
        """Start the worker processes and wait until each has loaded the voices."""
        started = await asyncio.gather(
            *(_WorkerProcess.spawn(self._preload()) for _ in range(self.worker_count)), return_exceptions=True
        )
        errors = [w for w in started if isinstance(w, BaseException)]
        for worker in started:
            if isinstance(worker, _WorkerProcess):
                self._all.add(worker)
                self._idle.put_nowait(worker)
        if errors:
            await self.close()
            raise errors[0]

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        return [w.pid for w in self._all]

    def voices(self) -> list[str]:
        return list(self._voices)

    def _resolve(self, voice_id: str) -> LocalVoice:
        voice = self._voices.get(voice_id) or self._voices.get(self.default_voice_id)
        if voice is None:
            raise TtsError(f"no local voice for {voice_id!r} and default {self.default_voice_id!r} is not installed")
        return voice

    async def _replace(self, worker: _WorkerProcess) -> _WorkerProcess:
        """A fresh process in place of a dead or desynchronised one."""
        if self._closed:
            raise TtsError("TTS closed")
        self._all.discard(worker)
        with contextlib.suppress(ProcessLookupError):
            worker.proc.kill()
        await worker.stop()
        fresh = await _WorkerProcess.spawn(self._preload())
        if self._closed:
            await fresh.stop()
            raise TtsError("TTS closed")
        self._all.add(fresh)
        return fresh

    def _in_background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _restart_into_pool(self, worker: _WorkerProcess) -> None:
        try:
            self._idle.put_nowait(await self._replace(worker))
        except Exception:
            # Back in the pool dead: the next caller retries the restart and sees the error.
            log.exception("could not restart a Piper worker")
            self._idle.put_nowait(worker)

    async def _drain_into_pool(self, worker: _WorkerProcess, request_id: str) -> None:
        """After a cancel: skip this request's remaining frames, then reuse the worker."""
        try:
            async with asyncio.timeout(30.0):
                while (frame := await worker.frames.get()) is not None:
                    header = frame[0]
                    if header.get("id") == request_id and header.get("final"):
                        self.stopped_early += bool(header.get("cancelled"))
                        self._idle.put_nowait(worker)
                        return
        except TimeoutError:
            log.warning("Piper worker %s did not stop after cancel; restarting it", worker.pid)
        await self._restart_into_pool(worker)

    async def _acquire(self) -> _WorkerProcess:
        if self._closed:
            raise TtsError("TTS closed")
        worker = await self._idle.get()
        if worker.dead or worker.proc.returncode is not None:
            try:
                worker = await self._replace(worker)
            except BaseException:
                self._idle.put_nowait(worker)  # still dead; the next caller tries again
                raise
        return worker

    async def synthesize(
        self, text: str, *, voice_id: str, speed: float = 1.0, volume: float = 1.0
    ) -> AsyncIterator[SynthesisChunk]:
        """Speak `text`, yielding one int16 chunk per sentence (22,050 Hz for Piper voices).

        speed (0.5-2, Retell's voice_speed) sets Piper's length_scale = 1/speed; volume scales
        the samples, clipping at full scale.
        """
        if not (math.isfinite(speed) and math.isfinite(volume)) or speed <= 0 or volume < 0:
            raise ValueError(f"bad speed {speed} or volume {volume}")
        model, config = self._files[self._resolve(voice_id).voice_id]
        if not text.strip():
            return
        request_id = uuid.uuid4().hex
        worker = await self._acquire()
        done = False

        def abort(_task: object = None) -> None:
            """Stop the worker after its current sentence and drain it in the background (once)."""
            nonlocal done
            if not done:
                done = True
                worker.send({"cancel": request_id})
                self._in_background(self._drain_into_pool(worker, request_id))

        # A consumer cancelled between chunks never resumes this generator, and `async for`
        # does not close it (the task's traceback even keeps it alive), so watch the task too.
        owner = asyncio.current_task()
        if owner is not None:
            owner.add_done_callback(abort)
        try:
            worker.send(
                {
                    "id": request_id,
                    "text": text,
                    "model": model,
                    "config": config,
                    "length_scale": 1.0 / min(max(speed, MIN_SPEED), MAX_SPEED),
                    "volume": volume,
                }
            )
            while not done:
                frame = await worker.frames.get()
                if frame is None:
                    done = True
                    self._in_background(self._restart_into_pool(worker))
                    raise TtsWorkerCrashed(f"Piper worker {worker.pid} died (exit code {worker.proc.returncode})")
                header, pcm = frame
                if header.get("id") != request_id:
                    continue
                if header.get("error"):
                    done = True
                    self._idle.put_nowait(worker)
                    raise TtsError(header["error"])
                if header.get("cancelled"):
                    done = True
                    self._idle.put_nowait(worker)
                    return
                if header.get("final"):
                    done = True
                    self._idle.put_nowait(worker)
                if pcm:
                    yield SynthesisChunk(
                        pcm=np.frombuffer(pcm, dtype="<i2").astype(np.int16),
                        sample_rate=int(header["sample_rate"]),
                        text=str(header.get("text", "")),
                    )
        finally:
            if owner is not None:
                owner.remove_done_callback(abort)
            abort()  # closed or cancelled mid-way; no-op when the request ended

    async def close(self) -> None:
        """Stop every worker process and background task."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        workers, self._all = list(self._all), set()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        for worker in workers:  # wake callers waiting for a worker: they get "TTS closed"
            self._idle.put_nowait(worker)
