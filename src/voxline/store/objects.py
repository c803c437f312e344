"""Where a call's files live: a local directory (default) or any S3-compatible object store.

Keys are ``/``-separated relative paths such as ``calls/<call_id>/recording.wav`` (see `call_key`).
Both stores refuse keys that could escape their root — empty, absolute, ``.`` or ``..`` segments,
backslashes, NUL or other control characters — with `ValueError` (raised by the call itself, `read`
included), so a key that works on one store works the same on the other. Segments starting with
``.tmp-`` are reserved for the local store's temporary files.

Contract shared by the stores:

- ``put_*`` replace the whole object; readers never see a half-written one.
- `ObjectStore.info` answers None for a missing key.
- `ObjectStore.read` yields the byte range ``[start, end)`` in chunks of at most `CHUNK_SIZE`;
  ``end`` past the size is clipped, ``start`` at or past the size yields nothing, a negative
  ``start`` or ``end < start`` is a ValueError. A missing key raises `ObjectNotFound` (a
  `KeyError`) from the first iteration, not from the call: check `ObjectStore.info` first to
  answer 404 before sending headers.
- Prefixes are plain string prefixes, as in S3: ``calls/call_a`` also matches ``calls/call_ab/…``,
  so pass ``call_prefix(call_id)`` (ends with ``/``) to mean one call. `ObjectStore.delete_prefix`
  refuses the empty prefix.

`LocalObjectStore` keeps no metadata beside the file: ``content_type`` comes from the key's
extension (`content_type_for`), whatever was passed to ``put_*``. Store objects under names whose
extension says what they are, and pass ``content_type_for(key)`` so both stores agree.
"""

import asyncio
import mimetypes
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

CHUNK_SIZE = 64 * 1024
MIB = 1024 * 1024

_CALL_ID = re.compile(r"call_[0-9a-f]{1,64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_TEMP_MARK = ".tmp-"  # segments starting with this are the local store's temporary files
_TEMP_TOKEN_BYTES = 6
_TEMP_NAME_START = len(_TEMP_MARK) + 2 * _TEMP_TOKEN_BYTES + 1  # ".tmp-<hex>-<name>": where <name> starts
_CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
}
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_S3_DELETE_BATCH = 1000


class ObjectNotFound(KeyError):
    """Raised by `ObjectStore.read` when the key holds no object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no object at {self.key!r}"


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str


class ObjectStore(Protocol):
    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    async def info(self, key: str) -> ObjectInfo | None: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def keys(self, prefix: str) -> list[str]: ...


# --- keys -------------------------------------------------------------------------------------


def call_key(call_id: str, name: str) -> str:
    """``calls/<call_id>/<name>``; ValueError unless the id is ``call_`` + hex and the name is plain."""
    return f"{call_prefix(call_id)}{check_file_name(name)}"


def call_prefix(call_id: str) -> str:
    """``calls/<call_id>/``: the prefix holding exactly one call's objects."""
    return f"calls/{check_call_id(call_id)}/"


def check_call_id(call_id: str) -> str:
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise ValueError(f"bad call id {call_id!r}")
    return call_id


def check_file_name(name: str) -> str:
    """Names are ``[A-Za-z0-9._-]``, at most 128 characters, and do not start with a dot."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise ValueError(f"bad file name {name!r}")
    return name


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or key.endswith("/"):
        raise ValueError(f"bad object key {key!r}")
    _check_segments(key, key.split("/"))
    return key


def check_prefix(prefix: str) -> str:
    """A prefix: complete segments follow the key rules; the last, partial one only the character rules."""
    if not isinstance(prefix, str):
        raise ValueError(f"bad object key prefix {prefix!r}")
    *complete, partial = prefix.split("/")
    _check_segments(prefix, complete)
    if _BAD_KEY_CHARS.search(partial) or partial.startswith(_TEMP_MARK):
        raise ValueError(f"bad object key prefix {prefix!r}")
    return prefix


def _check_segments(text: str, segments: list[str]) -> None:
    if _BAD_KEY_CHARS.search(text):
        raise ValueError(f"bad object key {text!r}")
    for segment in segments:
        if segment in ("", ".", "..") or segment.startswith(_TEMP_MARK):
            raise ValueError(f"bad object key {text!r}")


def content_type_for(key: str) -> str:
    """The content type a key's extension implies (what `LocalObjectStore.info` reports)."""
    suffix = Path(key).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    return mimetypes.guess_type(key, strict=True)[0] or _DEFAULT_CONTENT_TYPE


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range [{start}, {end})")


# --- local directory ----------------------------------------------------------------------------


class LocalObjectStore:
    """Objects as files under `root`: key ``calls/<id>/recording.wav`` is ``root/calls/<id>/recording.wav``.

    With `root` the data directory this is the folder layout `voxline.store.files.LocalFiles` uses.
    All file IO runs in worker threads; writes go to a temporary file in the target folder, then
    are renamed over the target (atomic on POSIX).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.path_for(key), lambda out: _copy_into(Path(path), out))

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.path_for(key), lambda out: out.write(data))

    async def info(self, key: str) -> ObjectInfo | None:
        size = await asyncio.to_thread(_file_size, self.path_for(key))
        return None if size is None else ObjectInfo(size, content_type_for(key))

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        _check_range(start, end)
        return self._read(path, key, start, end)

    async def _read(self, path: Path, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(_open_for_read, path, key)
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                size = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()  # closing a file opened for reading does not wait on the disk

    async def delete_prefix(self, prefix: str) -> int:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete every object (empty prefix)")
        return await asyncio.to_thread(self._delete_prefix, prefix)

    async def keys(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._keys, check_prefix(prefix))

    def _write(self, target: Path, fill: Callable[[IO[bytes]], object]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{_TEMP_MARK}{secrets.token_hex(_TEMP_TOKEN_BYTES)}-{target.name}")
        try:
            with temp.open("xb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _keys(self, prefix: str) -> list[str]:
        return sorted(key for key, _, temporary in self._scan(prefix) if not temporary)

    def _scan(self, prefix: str) -> list[tuple[str, Path, bool]]:
        """(key, path, temporary) of files whose key starts with `prefix`; temporary files count under their target."""
        base = self.root.joinpath(*prefix.split("/")[:-1])
        found: list[tuple[str, Path, bool]] = []
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(_TEMP_MARK)]
            relative = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                temporary = name.startswith(_TEMP_MARK)
                target = name[_TEMP_NAME_START:] if temporary else name
                key = target if relative == "." else f"{relative}/{target}"
                if key.startswith(prefix):
                    found.append((key, Path(folder, name), temporary))
        return found

    def _delete_prefix(self, prefix: str) -> int:
        """Deletes the objects (and temporary files a crashed write left) under `prefix`, then emptied folders."""
        deleted = 0
        folders: set[Path] = set()
        for _, path, temporary in self._scan(prefix):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            deleted += not temporary
            folders.update(p for p in path.parents if self.root in p.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            _remove_if_empty(folder)
        return deleted


def _copy_into(source: Path, out: IO[bytes]) -> None:
    with source.open("rb") as src:
        shutil.copyfileobj(src, out, MIB)


def _file_size(path: Path) -> int | None:
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return stat.st_size if path.is_file() else None


def _open_for_read(path: Path, key: str) -> IO[bytes]:
    try:
        return path.open("rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ObjectNotFound(key) from None


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (or already gone)


# --- S3-compatible object store -------------------------------------------------------------------


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, or MinIO / Ceph / moto at `endpoint_url`), under `key_prefix`.

    boto3 calls run in worker threads (the client is thread-safe). `put_file` uses boto3's managed
    transfer, multipart above `multipart_threshold`. With an `endpoint_url` the client addresses
    buckets path-style (``http://host/bucket/key``), which self-hosted servers expect. Credentials
    or region left None come from boto3's usual chain (environment, config files, instance role).
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        key_prefix: str = "",
        multipart_threshold: int = 8 * MIB,
        multipart_chunksize: int = 8 * MIB,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.key_prefix = _normalise_key_prefix(key_prefix)
        config = Config(
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=16,
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )
        self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize, max_concurrency=4
        )

    def object_name(self, key: str) -> str:
        """The bucket key that holds `key`."""
        return self.key_prefix + check_key(key)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        name = self.object_name(key)
        await asyncio.to_thread(
            self._client.upload_file,
            str(path),
            self.bucket,
            name,
            ExtraArgs={"ContentType": content_type},
            Config=self._transfer,
        )

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        name = self.object_name(key)
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=name, Body=data, ContentType=content_type
        )

    async def info(self, key: str) -> ObjectInfo | None:
        name = self.object_name(key)
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=name)
        except self._client.exceptions.ClientError as error:
            if _is_missing(error):
                return None
            raise
        return ObjectInfo(int(head["ContentLength"]), head.get("ContentType") or _DEFAULT_CONTENT_TYPE)

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        name = self.object_name(key)
        _check_range(start, end)
        return self._read(key, name, start, end)

    async def _read(self, key: str, name: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        if end is not None and end == start:
            if await self.info(key) is None:
                raise ObjectNotFound(key)
            return
        body = await self._open_body(key, name, start, end)
        if body is None:
            return
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def delete_prefix(self, prefix: str) -> int:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete every object (empty prefix)")
        return await asyncio.to_thread(self._delete_prefix, self.key_prefix + prefix)

    async def keys(self, prefix: str) -> list[str]:
        names = await asyncio.to_thread(self._list, self.key_prefix + check_prefix(prefix))
        return sorted(name[len(self.key_prefix) :] for name in names)

    async def _open_body(self, key: str, name: str, start: int, end: int | None) -> Any:
        """The object's streaming body for the range; None when the range starts past the end."""
        request: dict[str, str] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = await asyncio.to_thread(lambda: self._client.get_object(**request))
        except self._client.exceptions.ClientError as error:
            if _is_missing(error):
                raise ObjectNotFound(key) from None
            if _error_code(error) == "InvalidRange":
                return None
            raise
        return response["Body"]

    def _list(self, full_prefix: str) -> list[str]:
        names: list[str] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix):
            names.extend(item["Key"] for item in page.get("Contents", []))
        return names

    def _delete_prefix(self, full_prefix: str) -> int:
        names = self._list(full_prefix)
        for first in range(0, len(names), _S3_DELETE_BATCH):
            batch = [{"Key": name} for name in names[first : first + _S3_DELETE_BATCH]]
            response = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if errors := response.get("Errors"):
                raise RuntimeError(f"S3 refused to delete {len(errors)} objects, first: {errors[0]}")
        return len(names)


def _normalise_key_prefix(key_prefix: str) -> str:
    """``""`` stays empty; anything else is checked like a key and ends with exactly one ``/``."""
    stripped = key_prefix.strip("/")
    return f"{check_key(stripped)}/" if stripped else ""


def _error_code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_missing(error: Any) -> bool:
    """No such key. (HEAD answers a bare 404 for a missing bucket too; GET says NoSuchBucket, which raises.)"""
    return _error_code(error) in ("NoSuchKey", "NotFound", "404")
