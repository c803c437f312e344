"""Files kept for a call (recordings, logs) under the data directory, one folder per call."""

import shutil
from pathlib import Path


class LocalFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def call_dir(self, call_id: str) -> Path:
        if "/" in call_id or call_id.startswith("."):
            raise ValueError(f"bad call id {call_id!r}")
        return self.root / call_id

    def put(self, call_id: str, name: str, content: bytes) -> Path:
        folder = self.call_dir(call_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(name).name
        path.write_bytes(content)
        return path

    def list(self, call_id: str) -> list[str]:
        folder = self.call_dir(call_id)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def delete_call(self, call_id: str) -> None:
        shutil.rmtree(self.call_dir(call_id), ignore_errors=True)
