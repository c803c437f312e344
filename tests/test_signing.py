"""Retell signature scheme (spec G.3) and the re-serialisation-stable JSON it is computed over."""

import hashlib
import hmac
import json
import shutil
import subprocess
import time

import pytest
from retell.lib.webhook_auth import verify

from voxline.signing import compact_json, sign

KEY = "key_0123456789abcdef"

SAMPLES: list[object] = [
    {"event": "call_ended", "call": {"call_id": "c1", "duration_ms": 1234.0, "latency": {"p50": 812.5}}},
    {"b": 1, "2": "two", "a": [1.0, 2.5, -0.0, {"x": 3.0}], "10": None, "1": True},
    {"text": "héllo — 日本語 🎉", "quote": 'say "hi"\n\t\\', "ctl": "\x01\x1f", "ls": "\u2028"},
    {"big": 1e21, "bigger": 1.5e300, "huge_int": 12345678901234567890.0, "p60": 2.0**60, "neg": -7.0, "small": 0.0001},
    [],
    {},
    "just a string",
    3.0,
]


def python_receiver(body: str) -> str:
    return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)


def test_sign_matches_spec_formula() -> None:
    body = '{"a":1}'
    expected = hmac.new(KEY.encode(), (body + "1700000000000").encode(), hashlib.sha256).hexdigest()
    assert sign(body, KEY, 1_700_000_000_000) == f"v=1700000000000,d={expected}"


def test_official_verifier_accepts_and_rejects_tampering() -> None:
    body = compact_json({"event": "call_started", "call": {"call_id": "abc", "agent_id": "ag"}})
    signature = sign(body, KEY, int(time.time() * 1000))
    assert verify(body, KEY, signature)
    assert not verify(body.replace("abc", "abd"), KEY, signature)
    assert not verify(body, "other-key", signature)


def test_official_verifier_accepts_empty_body_and_unicode() -> None:
    now = int(time.time() * 1000)
    assert verify("", KEY, sign("", KEY, now))
    body = compact_json({"t": "日本語 🎉"})
    assert verify(body, KEY, sign(body, "key_0123456789abcdef", now))


def test_official_verifier_rejects_stale_timestamp() -> None:
    stale = int(time.time() * 1000) - 10 * 60 * 1000
    assert not verify("{}", KEY, sign("{}", KEY, stale))


def test_compact_json_shape() -> None:
    assert compact_json({"a": 1.0, "b": [2.0, 2.5], "c": "é"}) == '{"a":1,"b":[2,2.5],"c":"é"}'
    assert compact_json({"b": 0, "10": 1, "2": 2, "x": 3, "01": 4}) == '{"2":2,"10":1,"b":0,"x":3,"01":4}'
    assert compact_json((1, 2.0)) == "[1,2]"


def test_compact_json_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        compact_json({"x": float("nan")})


@pytest.mark.parametrize("sample", SAMPLES)
def test_python_receiver_round_trip(sample: object) -> None:
    body = compact_json(sample)
    assert python_receiver(body) == body
    # ...so a Python receiver that re-serialises before verifying still accepts the signature.
    signature = sign(body, KEY, int(time.time() * 1000))
    assert verify(python_receiver(body), KEY, signature)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_receiver_round_trip() -> None:
    bodies = [compact_json(sample) for sample in SAMPLES]
    script = "const a = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
    script += "process.stdout.write(JSON.stringify(a.map((s) => JSON.stringify(JSON.parse(s)))));"
    result = subprocess.run(
        ["node", "-e", script], input=json.dumps(bodies), capture_output=True, text=True, check=True, timeout=20
    )
    assert json.loads(result.stdout) == bodies
