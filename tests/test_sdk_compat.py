"""The official `retell-sdk` from PyPI, in two versions, drives every control-plane call.

Each test runs tests/sdk_driver.py in a subprocess against a real server (SQLite and
PostgreSQL), with the SDK validating every response strictly. 6.2.13 is the one installed in the
venv (test extra); 5.64.0, the last SDK that creates web calls through /v2/create-web-call, is
installed on demand into <repo>/.cache/retell-sdk-5.64.0 and put in front of it with PYTHONPATH.
"""

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.servers import ServerProcess

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "sdk_driver.py"
OLD_SDK = "5.64.0"
SDK_VERSIONS = ["6.2.13", OLD_SDK]


def _installed(target: Path, version: str) -> bool:
    return (target / "retell" / "__init__.py").is_file() and (target / f"retell_sdk-{version}.dist-info").is_dir()


@pytest.fixture(scope="session")
def old_sdk_dir() -> Path:
    """`retell-sdk==5.64.0` in its own directory (its dependencies are the installed SDK's)."""
    target = REPO / ".cache" / f"retell-sdk-{OLD_SDK}"
    if _installed(target, OLD_SDK):
        return target
    # Install next to the target and move it into place, so parallel workers never see half a tree.
    staging = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        pip = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(staging),
                f"retell-sdk=={OLD_SDK}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert pip.returncode == 0, f"pip install retell-sdk=={OLD_SDK} failed:\n{pip.stdout}\n{pip.stderr}"
        try:
            staging.rename(target)
        except OSError:
            if not _installed(target, OLD_SDK):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    assert _installed(target, OLD_SDK), f"pip did not install retell-sdk {OLD_SDK} into {target}"
    return target


def _run_driver(server: ServerProcess, pythonpath: Path | None) -> subprocess.CompletedProcess[str]:
    assert server.api_key
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETELL_")}
    env.update({"RETELL_BASE_URL": server.base_url, "RETELL_API_KEY": server.api_key})
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, str(DRIVER)], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.parametrize("sdk_version", SDK_VERSIONS)
def test_official_sdk_drives_every_control_plane_call_with_strict_validation(
    server: ServerProcess, sdk_version: str, request: pytest.FixtureRequest
) -> None:
    pythonpath = request.getfixturevalue("old_sdk_dir") if sdk_version == OLD_SDK else None
    result = _run_driver(server, pythonpath)
    report = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    match = re.search(r"^retell-sdk version: (\S+)", result.stdout, re.MULTILINE)
    assert match, report
    assert match.group(1) == sdk_version, f"driver imported retell-sdk {match.group(1)}\n{report}"
    assert result.returncode == 0, report
    assert "OK: every step passed" in result.stdout, report
