"""A Voxline server for benchmarks: `python -m voxline serve` in a subprocess on a free loopback
port with a fresh data directory, its first API key read from its output."""

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m voxline serve` on a free loopback port with its own fresh data directory."""

    def __init__(self, data_dir: Path, cpu: int | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.port = free_port()
        self.cpu = cpu
        self.api_key = ""
        self.process: subprocess.Popen[str] | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXLINE_")}
        env.update({"VOXLINE_DATA_DIR": str(self.data_dir), "VOXLINE_LOG_LEVEL": "warning"})
        env.update(self.extra_env)
        cpu = self.cpu
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voxline", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches only the benchmark, which then stops the server itself
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    raise RuntimeError("server exited:\n" + "".join(self.output))
                continue
            self.output.append(line)
            match = re.search(r"\b(key_[0-9a-f]{48})\b", line)
            if match and not self.api_key:
                self.api_key = match.group(1)
            if "Voxline listening" in line:
                break
        else:
            raise RuntimeError("server did not start:\n" + "".join(self.output))
        if not self.api_key:
            raise RuntimeError("server printed no API key:\n" + "".join(self.output))
        # Keep reading its output so a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(self.output))
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy:\n" + "".join(self.output))

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self) -> str | None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL after 15 s; None if it stopped cleanly.

        uvicorn re-raises the captured SIGTERM after its graceful shutdown, so -SIGTERM is clean too.
        """
        if self.process is None:
            return None
        problem = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                problem = "did not stop within 15 s of SIGTERM; killed"
        else:
            problem = f"had already exited with code {self.process.returncode}"
        if problem is None and self.process.returncode not in (0, -signal.SIGTERM):
            problem = f"exited with code {self.process.returncode}"
        self.process = None
        return problem
