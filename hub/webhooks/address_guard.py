"""Which URLs and addresses the hub may send webhooks to (server-side request forgery).

A webhook URL is chosen by a market's owner, so without a guard the hub could be made to POST into
its own network (a database's HTTP port, a cloud metadata service). The rules: `https://` only, and
every address the host name resolves to must be a public unicast address: no loopback, private,
link-local, multicast, unspecified or reserved ones (IPv4-mapped, NAT64 and 6to4 IPv6 addresses
are judged by the IPv4 address inside them). They are checked at registration and again at every
send, against the addresses actually connected to: `GuardedResolver` resolves the name itself,
drops every address the rules refuse and hands aiohttp only the checked ones, so a name that
resolved to a public address at registration and to 127.0.0.1 now (DNS rebinding) is refused.

`allow_insecure` (WEBHOOK_ALLOW_INSECURE=1, development and tests) lifts both rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_LENGTH = 2048


class AddressRefused(ValueError):
    """The URL or one of its addresses may not be sent to; the message says why."""


def is_public_address(address: IPAddress | str) -> bool:
    """A public unicast address: the only kind a webhook may be sent to."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.teredo is not None:
            return False  # a tunnel to somewhere else
    refused = (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_unspecified
               or ip.is_reserved)  # fmt: skip
    return not refused and ip.is_global


def parse_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url_form(url: str, *, allow_insecure: bool) -> tuple[str, int]:
    """The URL's host and port when its form is acceptable; AddressRefused otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AddressRefused("the URL is malformed") from None
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise AddressRefused("the URL must start with https://")
    if not parts.hostname:
        raise AddressRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("the URL may not carry credentials")
    if parts.fragment:
        raise AddressRefused("the URL may not have a #fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, *, allow_insecure: bool) -> None:
    """At registration: the form, and every address its host resolves to now."""
    host, port = check_url_form(url, allow_insecure=allow_insecure)
    if allow_insecure:
        return
    literal = parse_literal(host)
    if literal is not None:
        addresses: list[str] = [str(literal)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise AddressRefused("the host name does not resolve") from None
        addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        if not is_public_address(address.split("%")[0]):
            raise AddressRefused("the URL resolves to an address that is not public (loopback, private, ...)")


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then keeps only public addresses: aiohttp connects
    to what this returns, so the address connected to is always one that was checked."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [result for result in results if is_public_address(str(result["host"]).split("%")[0])]
        if not allowed:
            raise OSError(f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def check_send_target(host: str, *, allow_insecure: bool) -> None:
    """At a send, for an address written in the URL itself (aiohttp does not resolve those)."""
    literal = parse_literal(host)
    if not allow_insecure and literal is not None and not is_public_address(literal):
        raise AddressRefused("the URL's address is not public")
