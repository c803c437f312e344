"""moto's standalone S3 server in a subprocess on a free loopback port: a real S3-protocol
server for the object-store tests and for servers configured with VOXLINE_S3_*."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}")


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's server on a free port; tries again if another process took the port meanwhile."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for attempt in range(3):
        port = _free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, log)
            return process, url
        except RuntimeError:
            process.kill()
            process.wait()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_moto(log: Path, bucket: str) -> Iterator[str]:
    """The server's URL, with `bucket` created; stopped afterwards."""
    process, url = _start_moto(log)
    try:
        raw_client(url).create_bucket(Bucket=bucket)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
