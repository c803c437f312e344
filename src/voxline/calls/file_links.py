"""The URLs of a call's stored files on the call object: `recording_url`,
`recording_multi_channel_url`, `public_log_url`.

Voxline serves the files itself (`GET /v2/call-files/{call_id}/{name}`). With the agent's
`opt_in_signed_url`, each URL carries an expiring signature (`signed_url_expiration_ms` from the
moment the call object is read) and works without an API key; otherwise the URL needs the API key.
"""

from voxline.calls.file_urls import DEFAULT_SIGNED_URL_EXPIRATION_MS, file_path, signed_query
from voxline.clock import Clock
from voxline.store.calls import CallRecord

LINK_FIELDS = {
    "recording.wav": "recording_url",
    "recording_multi_channel.wav": "recording_multi_channel_url",
    "public_log.txt": "public_log_url",
}


class FileLinks:
    def __init__(self, base_url: str, secret: bytes, clock: Clock) -> None:
        self._base = base_url.rstrip("/")
        self._secret = secret
        self._clock = clock

    def __call__(self, row: CallRecord) -> dict[str, str]:
        files = row.config.get("files") or {}
        signed = bool(row.data.get("opt_in_signed_url"))
        agent = row.config.get("agent") or {}
        expires_at = self._clock.now_ms() + int(
            agent.get("signed_url_expiration_ms") or DEFAULT_SIGNED_URL_EXPIRATION_MS
        )
        links: dict[str, str] = {}
        for name, field in LINK_FIELDS.items():
            if name not in files:
                continue
            url = self._base + file_path(row.call_id, name)
            if signed:
                url += "?" + signed_query(row.call_id, name, self._secret, expires_at)
            links[field] = url
        return links
