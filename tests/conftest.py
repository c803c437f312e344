"""Shared fixtures: real servers on loopback, over SQLite and over PostgreSQL."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.servers import ServerProcess, create_pg_database, drop_pg_database
from voxline.services import Services
from voxline.settings import Settings

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One running server per test module and backend."""
    srv = ServerProcess(tmp_path_factory.mktemp("data"), backend=request.param)
    try:
        yield srv.start()
    finally:
        srv.close()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Factory for servers with their own settings; all are closed after the test."""
    made: list[ServerProcess] = []

    def make(backend: str = "sqlite", **env: str) -> ServerProcess:
        srv = ServerProcess(tmp_path / f"data{len(made)}", backend=backend, env_overrides=env)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


def custom_llm_agent(api: httpx.Client, **fields: object) -> dict[str, object]:
    body = {
        "voice_id": "piper-joe",
        "response_engine": {"type": "custom-llm", "llm_websocket_url": "ws://127.0.0.1:9/llm-websocket"},
        **fields,
    }
    response = api.post("/create-agent", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# Speech models (tests/test_speech.py): each is loaded once per test process.


@pytest.fixture(scope="session")
def speech_vad() -> object:
    from voxline.speech.silero import SileroVad

    return SileroVad()


@pytest.fixture(scope="session")
def speech_asr() -> Iterator[object]:
    from voxline.speech.whisper import WhisperAsr

    asr = WhisperAsr(workers=2)
    yield asr
    asr.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def speech_tts() -> AsyncIterator[object]:
    """Two Piper worker processes, bound to the session event loop (tests must use it too)."""
    from voxline.speech.piper import PiperTts

    tts = await PiperTts.start(workers=2)
    yield tts
    await tts.close()


# In-process services on a clock the test moves (tests/test_call_join.py, tests/test_retention.py).

T0 = 1_800_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000


@pytest.fixture(params=BACKENDS)
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Services, FakeClock]]:
    pg = create_pg_database() if request.param == "postgresql" else None
    clock = FakeClock()
    built = Services.build(Settings(data_dir=tmp_path, database_url=pg), clock)
    await built.migrate()
    try:
        yield built, clock
    finally:
        await built.close()
        if pg:
            drop_pg_database(pg)


@pytest.fixture(scope="module")
def provider() -> Iterator[object]:
    """An OpenAI-protocol LLM endpoint of the test module's own (tests/openai_fake.py)."""
    from tests.openai_fake import FakeOpenAi

    with FakeOpenAi().start() as server:
        yield server
