"""Egress (SSRF) guard: which URLs outbound requests to user-configured endpoints may reach."""

import asyncio
import socket
from collections.abc import Callable

import httpx
import pytest

from voxline.net.egress import EgressRefused, GuardedTransport, check_url

REFUSED_URLS = {
    "http://127.0.0.1/": "loopback",
    "http://127.8.9.10:8080/x": "loopback",
    "http://[::1]/": "loopback",
    "http://10.1.2.3/": "private",
    "http://172.16.0.1/": "private",
    "http://172.31.255.254/": "private",
    "http://192.168.1.1/": "private",
    "http://[fc00::1]/": "private",
    "http://[fd12:3456::1]/": "private",
    "http://169.254.169.254/latest/meta-data/": "metadata",
    "http://169.254.1.1/": "link-local",
    "http://[fe80::1]/": "link-local",
    "http://0.0.0.0/": "unspecified",
    "http://[::]/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://240.0.0.1/": "reserved",
    "http://255.255.255.255/": "reserved",
    "http://100.64.0.1/": "carrier-grade NAT",
    "http://100.127.255.254/": "carrier-grade NAT",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://[::ffff:169.254.169.254]/": "metadata",
    "http://[::ffff:10.0.0.1]/": "private",
    "http://[2002:7f00:1::]/": "loopback",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::]/": "metadata",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::7f00:1]/": "loopback",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::c0a8:101]/": "private",  # NAT64 of 192.168.1.1
    "http://192.0.2.1/": "not globally routable",  # TEST-NET-1
    "https://localhost/": "loopback",
    "http://LOCALHOST.:9000/": "loopback",
    "http://api.localhost/": "loopback",
}


@pytest.mark.parametrize(("url", "why"), REFUSED_URLS.items())
async def test_internal_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        await check_url(url, allow_private=False)
    assert why in refused.value.reason
    assert str(refused.value) == refused.value.reason


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/"])
async def test_allow_private_skips_address_checks(url: str) -> None:
    await check_url(url, allow_private=True)


async def test_reason_names_the_address() -> None:
    with pytest.raises(EgressRefused, match=r"^127\.0\.0\.1 is a loopback address$"):
        await check_url("http://127.0.0.1:8080/tool", allow_private=False)


async def test_other_ipv4_spellings_are_checked_too() -> None:
    """Decimal / short IPv4 spellings resolve through getaddrinfo and are still refused."""
    for url in ("http://2130706433/", "http://127.1/"):
        with pytest.raises(EgressRefused, match="loopback"):
            await check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://x/", "ws://example.com/"])
@pytest.mark.parametrize("allow_private", [False, True])
async def test_bad_scheme_is_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(EgressRefused, match="scheme"):
        await check_url(url, allow_private=allow_private)


@pytest.mark.parametrize("url", ["http:///path", "https://", "not a url", ""])
async def test_missing_host_is_refused(url: str) -> None:
    with pytest.raises(EgressRefused):
        await check_url(url, allow_private=True)


async def test_unresolvable_host_is_refused() -> None:
    with pytest.raises(EgressRefused, match=r"^cannot resolve tool\.voxline-test\.invalid"):
        await check_url("https://tool.voxline-test.invalid/hook", allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/", "https://93.184.216.34:8443/x?y=1", "http://[2606:2800:220:1::1]/"]
)
async def test_public_literal_addresses_are_allowed(url: str) -> None:
    await check_url(url, allow_private=False)  # resolves nothing, connects nowhere


async def test_ipv4_mapped_public_address_is_allowed() -> None:
    await check_url("http://[::ffff:93.184.216.34]/", allow_private=False)


# GuardedTransport: the check at connect time, with the connection pinned to the checked address.


def recording_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    return httpx.MockTransport(handler)


async def test_guarded_transport_refuses_before_sending() -> None:
    seen: list[httpx.Request] = []
    transport = GuardedTransport(allow_private=False, inner=recording_transport(seen))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get("http://127.0.0.1:9/")
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get("http://localhost:9/")
    assert seen == []


async def test_guarded_transport_pins_public_address_keeping_host_and_sni() -> None:
    seen: list[httpx.Request] = []
    transport = GuardedTransport(allow_private=False, inner=recording_transport(seen))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://[::ffff:93.184.216.34]/a?b=1")
        assert response.text == "ok"
    assert seen[0].url.host == "::ffff:93.184.216.34"  # already a literal: untouched
    assert "sni_hostname" not in seen[0].extensions


class FakeDns:
    """Stands in for the loop's resolver: answers from a script, one answer per lookup."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def getaddrinfo(self, host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        self.lookups.append(host)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answer.split(",")
        ]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeDns]:
    def install(*answers: str) -> FakeDns:
        dns = FakeDns(*answers)
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", dns.getaddrinfo)
        return dns

    return install


async def test_guarded_transport_pins_resolved_name(fake_dns: Callable[..., FakeDns]) -> None:
    """With a name, the request goes to the IP that was checked; Host and SNI keep the name."""
    fake_dns("93.184.216.34")
    seen: list[httpx.Request] = []
    transport = GuardedTransport(allow_private=False, inner=recording_transport(seen))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.post("https://tool.example.com/hook?x=1", content=b"{}")
    assert seen[0].url == httpx.URL("https://93.184.216.34/hook?x=1")
    assert seen[0].headers["host"] == "tool.example.com"
    assert seen[0].extensions["sni_hostname"] == "tool.example.com"
    assert seen[0].content == b"{}"


async def test_name_resolving_to_internal_address_is_refused(fake_dns: Callable[..., FakeDns]) -> None:
    fake_dns("10.0.0.7")
    with pytest.raises(EgressRefused, match=r"^tool\.example\.com resolves to 10\.0\.0\.7 is a private address$"):
        await check_url("https://tool.example.com/", allow_private=False)


async def test_any_internal_address_among_several_is_refused(fake_dns: Callable[..., FakeDns]) -> None:
    fake_dns("93.184.216.34,2606:2800:220:1::1,169.254.169.254")
    with pytest.raises(EgressRefused, match="metadata"):
        await check_url("https://mixed.example.com/", allow_private=False)
    fake_dns("93.184.216.34,2606:2800:220:1::1")
    await check_url("https://mixed.example.com/", allow_private=False)


async def test_dns_rebinding_is_caught_at_connect_time(fake_dns: Callable[..., FakeDns]) -> None:
    """Public for the up-front check, loopback for the connection: the transport refuses."""
    dns = fake_dns("93.184.216.34", "127.0.0.1")
    await check_url("http://rebind.example.com/", allow_private=False)
    seen: list[httpx.Request] = []
    transport = GuardedTransport(allow_private=False, inner=recording_transport(seen))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get("http://rebind.example.com/")
    assert seen == []
    assert dns.lookups == ["rebind.example.com", "rebind.example.com"]


async def test_guarded_transport_allow_private_passes_through() -> None:
    seen: list[httpx.Request] = []
    transport = GuardedTransport(allow_private=True, inner=recording_transport(seen))
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("http://localhost:9/x")).status_code == 200
    assert seen[0].url.host == "localhost"
