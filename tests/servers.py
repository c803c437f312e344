"""Real Voxline servers for tests: `voxline serve` in a subprocess on a free loopback port.

Each server gets its own data directory and, on PostgreSQL, its own fresh database, so tests can
run in parallel (pytest-xdist) without seeing each other's rows.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

PG_ADMIN = os.environ.get("VOXLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True)


def create_pg_database() -> str:
    """A new, empty PostgreSQL database; returns its URL."""
    name = f"voxline_test_{uuid.uuid4().hex[:12]}"
    _psql(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ServerProcess:
    data_dir: Path
    backend: str = "sqlite"
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    api_key: str | None = None
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.backend == "postgresql" and self.database_url is None:
            self.database_url = create_pg_database()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXLINE_")}
        env.update(
            {
                "VOXLINE_DATA_DIR": str(self.data_dir),
                "VOXLINE_LOG_LEVEL": "warning",
                # Control-plane tests never start a live call; live-call tests turn this back on.
                "VOXLINE_PRELOAD_SPEECH": "false",
            }
        )
        if self.database_url:
            env["VOXLINE_DATABASE_URL"] = self.database_url
        env.update(self.env_overrides)
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `voxline <args>` against this server's data directory and database."""
        return subprocess.run(
            [sys.executable, "-m", "voxline", *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voxline", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    raise RuntimeError("server exited:\n" + "".join(self.output))
                continue
            self.output.append(line)
            match = re.search(r"\b(key_[0-9a-f]{48})\b", line)
            if match and self.api_key is None:
                self.api_key = match.group(1)
            if "Voxline listening" in line:
                break
        # Keep reading for the server's whole life: a full pipe would block the server.
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become healthy:\n" + "".join(self.output))

    def _drain(self, stream: "IO[str]") -> None:
        for line in stream:
            self.output.append(line)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self.backend == "postgresql" and self.database_url:
            drop_pg_database(self.database_url)

    def client(self) -> httpx.Client:
        assert self.api_key, "server printed no API key"
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30)
