"""Settings: one definition, documented, with defaults that work on a fresh machine."""

from pathlib import Path

from voxline.settings import Settings

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in Settings.model_fields if f"`VOXLINE_{name.upper()}`" not in text]
    assert missing == []


def test_database_urls_get_async_drivers(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).resolved_database_url == f"sqlite:///{tmp_path.resolve()}/voxline.db"
    pg = Settings(database_url="postgresql://u:p@db:5432/vox").resolved_database_url
    assert pg == "postgresql+psycopg://u:p@db:5432/vox"


def test_ice_servers_parse_from_json_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VOXLINE_ICE_SERVERS", '[{"urls": ["turn:t.example:3478"], "username": "u"}]')
    assert Settings().ice_servers == [{"urls": ["turn:t.example:3478"], "username": "u"}]


def test_generated_token_secret_is_kept_private_and_stable(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).token_secret
    assert first == Settings(data_dir=tmp_path).token_secret
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
