"""Egress guard: refuse outbound requests to internal addresses (SSRF protection).

User-configured URLs (custom tools, later webhooks) must not let an agent author reach the
platform's own network: loopback, RFC 1918 / ULA private ranges, link-local (including the
169.254.169.254 cloud metadata endpoint), unspecified, multicast, reserved and CGNAT addresses,
and IPv6 forms that embed one of those IPv4 addresses (IPv4-mapped, 6to4, NAT64).

`check_url` resolves the host (without blocking the event loop) and refuses the URL if *any*
resolved address is internal. With ``allow_private=True`` (self-hosted setups whose tools live on
the same network) only the scheme and host checks apply.

DNS rebinding: `check_url` on its own is check-then-connect. The HTTP client resolves the name
again when it connects, and a hostile DNS server can answer with a public address for the check
and an internal one for the connection. `GuardedTransport` closes that window: it resolves and
checks every request itself (redirect hops included) and then connects to the checked IP literal,
keeping the original ``Host`` header and, for HTTPS, the original name for SNI and certificate
verification (httpx's ``sni_hostname`` request extension). Build outbound clients as
``httpx.AsyncClient(transport=GuardedTransport(allow_private=...), trust_env=False)``;
``trust_env=False`` keeps environment proxies, which would bypass the transport, out of play.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Callable

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class EgressRefused(Exception):
    """An outbound request was refused; `reason` is human-readable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Address classification


def _embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if any(addr in net for net in _NAT64):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


_CHECKS: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda a: a.is_loopback, "a loopback address"),
    (lambda a: a.is_unspecified, "an unspecified address"),
    (lambda a: a in _METADATA, "a link-local address (cloud metadata endpoint)"),
    (lambda a: a.is_link_local, "a link-local address"),
    (lambda a: a.is_multicast, "a multicast address"),
    (lambda a: any(a in net for net in _PRIVATE_NETWORKS), "a private address"),
    (lambda a: a in _CGNAT, "a carrier-grade NAT (shared) address"),
    (lambda a: isinstance(a, ipaddress.IPv6Address) and a.is_site_local, "a site-local address"),
    (lambda a: a.is_reserved, "a reserved address"),
    (lambda a: not a.is_global, "a special-purpose address that is not globally routable"),
)


def refusal_reason(addr: IPAddress) -> str | None:
    """Why `addr` must not be contacted, or None when it is a public address."""
    embedded = _embedded_ipv4(addr)
    if embedded is not None:
        inner = refusal_reason(embedded)
        return f"{addr} embeds {inner}" if inner else None
    for test, description in _CHECKS:
        if test(addr):
            return f"{addr} is {description}"
    return None


# URL parsing and resolution


def _parse(url: str | httpx.URL) -> httpx.URL:
    """Parse with httpx itself, so the guard sees exactly the host the client will use."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise EgressRefused(f"invalid URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise EgressRefused(f"scheme {parsed.scheme or '(none)'!r} is not allowed; use http or https")
    if not parsed.host:
        raise EgressRefused("URL has no host")
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses `host` resolves to, via the loop's (threaded) resolver."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise EgressRefused(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise EgressRefused(f"cannot resolve {host}: no addresses")
    return addresses


def _is_localhost_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


async def resolve_checked(url: str | httpx.URL, *, allow_private: bool) -> list[IPAddress]:
    """Check `url` and return the addresses its host resolves to (all of them allowed).

    With ``allow_private=True`` the scheme and host are checked, nothing is resolved and the
    result is empty.
    """
    parsed = _parse(url)
    if allow_private:
        return []
    host = parsed.host
    if _is_localhost_name(host):
        raise EgressRefused(f"{host} is a loopback name")
    addresses = await _resolve(host, parsed.port or DEFAULT_PORTS[parsed.scheme])
    for addr in addresses:
        reason = refusal_reason(addr)
        if reason:
            shown = reason if _literal(host) is not None else f"{host} resolves to {reason}"
            raise EgressRefused(shown)
    return addresses


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise `EgressRefused` unless `url` may be requested (see the module docstring)."""
    await resolve_checked(url, allow_private=allow_private)


# Transport that closes the DNS-rebinding window


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that checks every request and connects to the checked address.

    Raises `EgressRefused` (from ``client.send``) for refused requests; nothing is sent.
    """

    def __init__(self, *, allow_private: bool = False, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await resolve_checked(request.url, allow_private=self._allow_private)
        if addresses:
            request = _pinned(request, addresses[0])
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _pinned(request: httpx.Request, address: IPAddress) -> httpx.Request:
    """A copy of `request` aimed at `address`, keeping Host, SNI and certificate checks on the name."""
    host = request.url.host
    if _literal(host) == address:
        return request
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = host
    return httpx.Request(
        request.method,
        request.url.copy_with(host=str(address)),
        headers=request.headers,  # already carries Host: <original name>
        stream=request.stream,
        extensions=extensions,
    )
