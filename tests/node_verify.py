"""The official Node verifier (`Retell.verify` from the npm `retell-sdk`, tests/node/verify.mjs),
run on signed bodies. `scripts/setup-node` installs it; `scripts/test` requires it."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).parent / "node"
NODE_READY = shutil.which("node") is not None and (NODE_DIR / "node_modules" / "retell-sdk").is_dir()


def node_verify(items: list[dict[str, Any]]) -> list[bool]:
    """`Retell.verify` from the npm `retell-sdk` on each item (see tests/node/verify.mjs)."""
    lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    done = subprocess.run(
        ["node", "verify.mjs"], cwd=NODE_DIR, input=lines, capture_output=True, text=True, timeout=60, check=True
    )
    answers = done.stdout.split()
    assert len(answers) == len(items), done.stdout + done.stderr
    return [answer == "true" for answer in answers]
