"""One contract, two stores: LocalObjectStore on a temporary directory and S3ObjectStore on a real S3 server.

The S3 server is moto's standalone server in a subprocess on a free loopback port, spoken to over
HTTP with dummy credentials, path-style, exactly as a MinIO or Ceph endpoint would be.
"""

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.moto_server import raw_client as _raw_client
from tests.moto_server import running_moto
from voxline.store.files import LocalFiles
from voxline.store.objects import (
    CHUNK_SIZE,
    MIB,
    LocalObjectStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
    call_key,
    call_prefix,
    content_type_for,
)

CALL_A = "call_a4441234567890777c4a4a123e6"
CALL_B = "call_a4441234567890777c4a4a123e66"  # CALL_A is a string prefix of it
BUCKET = "voxline-test"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}
WAV = "audio/wav"
BIG_SIZE = 5 * MIB + 300_000  # above the 5 MiB multipart threshold set below: two parts


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server process with the test bucket, for this module."""
    with running_moto(tmp_path_factory.mktemp("moto") / "server.log", BUCKET) as url:
        yield url


def _s3_store(endpoint: str, key_prefix: str = "") -> S3ObjectStore:
    return S3ObjectStore(
        bucket=BUCKET,
        endpoint_url=endpoint,
        key_prefix=key_prefix,
        multipart_threshold=5 * MIB,
        multipart_chunksize=5 * MIB,
        **CREDENTIALS,
    )


@pytest.fixture(scope="module", params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path_factory.mktemp("data"))
    return _s3_store(request.getfixturevalue("s3_endpoint"), key_prefix="tenant-1")


@pytest.fixture(scope="module")
def big_content() -> bytes:
    return os.urandom(BIG_SIZE)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory, big_content: bytes) -> Path:
    path = tmp_path_factory.mktemp("big") / "recording.wav"
    path.write_bytes(big_content)
    return path


async def _read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def _chunk_sizes(chunks: AsyncIterator[bytes]) -> list[int]:
    return [len(chunk) async for chunk in chunks]


def _call_id(n: int) -> str:
    return f"call_{n:027x}"


# --- contract -----------------------------------------------------------------------------------


async def test_put_bytes_then_read_and_info(store: ObjectStore) -> None:
    key = call_key(_call_id(1), "public_log.txt")
    await store.put_bytes(key, b"hello log", content_type_for(key))
    assert await _read_all(store.read(key)) == b"hello log"
    assert await store.info(key) == ObjectInfo(9, "text/plain; charset=utf-8")


async def test_put_replaces_whole_object(store: ObjectStore) -> None:
    key = call_key(_call_id(2), "recording.wav")
    await store.put_bytes(key, b"a much longer first version", WAV)
    await store.put_bytes(key, b"short", WAV)
    assert await _read_all(store.read(key)) == b"short"
    assert await store.info(key) == ObjectInfo(5, WAV)


async def test_empty_object(store: ObjectStore) -> None:
    key = call_key(_call_id(3), "recording.wav")
    await store.put_bytes(key, b"", WAV)
    assert await store.info(key) == ObjectInfo(0, WAV)
    assert await _read_all(store.read(key)) == b""
    assert await _read_all(store.read(key, 0, 10)) == b""


async def test_big_file_round_trip_in_chunks(store: ObjectStore, big_file: Path, big_content: bytes) -> None:
    key = call_key(_call_id(4), "recording_multi_channel.wav")
    await store.put_file(key, big_file, WAV)
    assert await store.info(key) == ObjectInfo(BIG_SIZE, WAV)
    content = big_content
    assert await _read_all(store.read(key)) == content
    sizes = await _chunk_sizes(store.read(key))
    assert sum(sizes) == BIG_SIZE and max(sizes) <= CHUNK_SIZE and len(sizes) >= BIG_SIZE // CHUNK_SIZE
    middle = 5 * MIB - 1000  # spans the multipart boundary
    assert await _read_all(store.read(key, middle, middle + 200_000)) == content[middle : middle + 200_000]


async def test_put_file_of_missing_path_fails_and_stores_nothing(store: ObjectStore, tmp_path: Path) -> None:
    key = call_key(_call_id(5), "recording.wav")
    with pytest.raises(FileNotFoundError):
        await store.put_file(key, tmp_path / "absent.wav", WAV)
    assert await store.info(key) is None
    assert await store.keys(call_prefix(_call_id(5))) == []


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, b"0123456789"),
        (3, None, b"3456789"),
        (9, None, b"9"),
        (2, 5, b"234"),
        (0, 1, b"0"),
        (4, 4, b""),
        (7, 100, b"789"),
        (10, None, b""),
        (25, None, b""),
        (25, 30, b""),
    ],
)
async def test_ranges(store: ObjectStore, start: int, end: int | None, expected: bytes) -> None:
    key = call_key(_call_id(6), "recording.wav")
    if await store.info(key) is None:
        await store.put_bytes(key, b"0123456789", WAV)
    assert await _read_all(store.read(key, start, end)) == expected


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4), (-3, -1)])
def test_bad_ranges_raise_value_error_on_call(store: ObjectStore, start: int, end: int | None) -> None:
    with pytest.raises(ValueError):
        store.read(call_key(_call_id(6), "recording.wav"), start, end)


async def test_missing_key(store: ObjectStore) -> None:
    key = call_key(_call_id(7), "recording.wav")
    assert await store.info(key) is None
    for start, end in [(0, None), (5, None), (2, 9), (3, 3)]:
        chunks = store.read(key, start, end)  # the call succeeds; the first iteration raises
        with pytest.raises(ObjectNotFound) as raised:
            await _read_all(chunks)
        assert isinstance(raised.value, KeyError)
        assert raised.value.key == key and str(raised.value) == f"no object at {key!r}"


async def test_keys_and_delete_prefix_are_scoped_to_one_call(store: ObjectStore) -> None:
    names = ["public_log.txt", "recording.wav", "recording_multi_channel.wav"]
    for call_id in (CALL_A, CALL_B):
        for name in names:
            await store.put_bytes(call_key(call_id, name), name.encode(), content_type_for(name))
    assert await store.keys(call_prefix(CALL_A)) == [call_key(CALL_A, name) for name in names]
    assert await store.keys(call_prefix(CALL_B)) == [call_key(CALL_B, name) for name in names]
    assert len(await store.keys(f"calls/{CALL_A}")) == 6  # plain string prefix, as in S3

    assert await store.delete_prefix(call_prefix(CALL_A)) == 3
    assert await store.keys(call_prefix(CALL_A)) == []
    assert await store.info(call_key(CALL_A, "recording.wav")) is None
    assert await store.keys(call_prefix(CALL_B)) == [call_key(CALL_B, name) for name in names]
    assert await _read_all(store.read(call_key(CALL_B, "recording.wav"))) == b"recording.wav"
    assert await store.delete_prefix(call_prefix(CALL_A)) == 0


async def test_keys_of_everything_and_of_nothing(store: ObjectStore) -> None:
    key = call_key(_call_id(8), "recording.wav")
    await store.put_bytes(key, b"x", WAV)
    assert key in await store.keys("")
    assert key in await store.keys("calls/")
    assert await store.keys("calls/call_fff") == []
    assert await store.keys("nothing/here/") == []


async def test_delete_prefix_refuses_empty_prefix(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        await store.delete_prefix("")


BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "calls/../../outside",
    "calls/./x",
    "calls//x",
    "calls/x/",
    "calls\\..\\x",
    "calls/x\x00.wav",
    "calls/x\n.wav",
    "calls/.tmp-abc-x.wav",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_that_could_escape_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put_bytes(key, b"x", WAV)
    with pytest.raises(ValueError):
        await store.info(key)
    with pytest.raises(ValueError):
        store.read(key)


@pytest.mark.parametrize("prefix", ["/calls/", "../", "calls/../", "a\\b", "calls/\x00"])
async def test_bad_prefixes_are_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ValueError):
        await store.keys(prefix)
    with pytest.raises(ValueError):
        await store.delete_prefix(prefix)


# --- call keys ------------------------------------------------------------------------------------


def test_call_key() -> None:
    assert call_key(CALL_A, "recording.wav") == f"calls/{CALL_A}/recording.wav"
    assert call_prefix(CALL_A) == f"calls/{CALL_A}/"


@pytest.mark.parametrize(
    ("call_id", "name"),
    [
        ("call_", "recording.wav"),
        ("call_XYZ", "recording.wav"),
        ("agent_abc", "recording.wav"),
        ("../call_abc", "recording.wav"),
        ("call_abc/..", "recording.wav"),
        ("call_abc\n", "recording.wav"),
        (CALL_A, ""),
        (CALL_A, ".."),
        (CALL_A, ".hidden"),
        (CALL_A, "a/b.wav"),
        (CALL_A, "a\\b.wav"),
        (CALL_A, "rec ording.wav"),
        (CALL_A, "x" * 129),
        (CALL_A, "recording.wav\x00"),
    ],
)
def test_call_key_validation(call_id: str, name: str) -> None:
    with pytest.raises(ValueError):
        call_key(call_id, name)


def test_content_types() -> None:
    assert content_type_for("calls/call_1/recording.wav") == "audio/wav"
    assert content_type_for("calls/call_1/public_log.txt") == "text/plain; charset=utf-8"
    assert content_type_for("calls/call_1/blob") == "application/octet-stream"


# --- local store specifics -----------------------------------------------------------------------


async def test_local_store_shares_the_local_files_layout(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path / "calls")
    store = LocalObjectStore(tmp_path)
    files.put(CALL_A, "public_log.txt", b"from LocalFiles")
    assert await _read_all(store.read(call_key(CALL_A, "public_log.txt"))) == b"from LocalFiles"
    await store.put_bytes(call_key(CALL_A, "recording.wav"), b"RIFF", WAV)
    assert files.list(CALL_A) == ["public_log.txt", "recording.wav"]
    assert (tmp_path / "calls" / CALL_A / "recording.wav").read_bytes() == b"RIFF"
    files.delete_call(CALL_A)
    assert await store.keys(call_prefix(CALL_A)) == []
    await store.put_bytes(call_key(CALL_B, "recording.wav"), b"RIFF", WAV)
    assert await store.delete_prefix(call_prefix(CALL_B)) == 1
    assert not (tmp_path / "calls" / CALL_B).exists()  # the emptied call folder goes too


async def test_local_store_leaves_no_temporary_files(tmp_path: Path, big_file: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.put_file(call_key(CALL_A, "recording.wav"), big_file, WAV)
    await store.put_bytes(call_key(CALL_A, "public_log.txt"), b"log", "text/plain")
    assert sorted(p.name for p in (tmp_path / "calls" / CALL_A).iterdir()) == ["public_log.txt", "recording.wav"]


async def test_local_delete_prefix_also_clears_leftovers_of_a_crashed_write(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.put_bytes(call_key(CALL_A, "recording.wav"), b"RIFF", WAV)
    leftover = tmp_path / "calls" / CALL_A / ".tmp-0123456789ab-recording_multi_channel.wav"
    leftover.write_bytes(b"half")
    assert await store.keys(call_prefix(CALL_A)) == [call_key(CALL_A, "recording.wav")]
    assert await store.info(call_key(CALL_A, "recording_multi_channel.wav")) is None
    assert await store.delete_prefix(call_prefix(CALL_A)) == 1
    assert not (tmp_path / "calls" / CALL_A).exists()


async def test_local_store_reports_folders_as_missing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.put_bytes(call_key(CALL_A, "recording.wav"), b"RIFF", WAV)
    assert await store.info(f"calls/{CALL_A}") is None
    assert await store.info(f"calls/{CALL_A}/recording.wav/x") is None
    with pytest.raises(ObjectNotFound):
        await _read_all(store.read(f"calls/{CALL_A}"))


# --- S3 store specifics --------------------------------------------------------------------------


async def test_s3_big_file_went_up_in_parts_under_the_key_prefix(s3_endpoint: str, big_file: Path) -> None:
    store = _s3_store(s3_endpoint, key_prefix="/multi/")
    key = call_key(_call_id(9), "recording.wav")
    await store.put_file(key, big_file, WAV)
    head = _raw_client(s3_endpoint).head_object(Bucket=BUCKET, Key=f"multi/{key}")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts
    assert head["ContentType"] == WAV
    small = call_key(_call_id(9), "public_log.txt")
    await store.put_file(small, Path(__file__), "text/plain")
    assert "-" not in _raw_client(s3_endpoint).head_object(Bucket=BUCKET, Key=f"multi/{small}")["ETag"]
    assert await store.keys(call_prefix(_call_id(9))) == [small, key]


async def test_s3_key_prefixes_keep_stores_apart(s3_endpoint: str) -> None:
    one, two = _s3_store(s3_endpoint, "one"), _s3_store(s3_endpoint, "two")
    key = call_key(CALL_A, "recording.wav")
    await one.put_bytes(key, b"one", WAV)
    await two.put_bytes(key, b"two", WAV)
    assert await one.delete_prefix(call_prefix(CALL_A)) == 1
    assert await one.info(key) is None
    assert await _read_all(two.read(key)) == b"two"


async def test_s3_missing_bucket_is_an_error_not_a_missing_key(s3_endpoint: str) -> None:
    store = S3ObjectStore(bucket="no-such-bucket", endpoint_url=s3_endpoint, **CREDENTIALS)
    with pytest.raises(Exception) as raised:
        await _read_all(store.read(call_key(CALL_A, "recording.wav")))
    assert not isinstance(raised.value, KeyError)
    with pytest.raises(Exception, match="NoSuchBucket"):
        await store.put_bytes(call_key(CALL_A, "recording.wav"), b"x", WAV)
