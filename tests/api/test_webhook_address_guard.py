"""The webhook address guard (hub/webhooks/address_guard.py) on address VALUES: nothing here opens a
connection or asks a DNS server anything (the resolver under test is given a fake inner resolver)."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from hub.webhooks.address_guard import (
    AddressRefused,
    GuardedResolver,
    check_send_target,
    check_url_form,
    is_public_address,
)
from hub.webhooks.schedule import RetrySchedule

REFUSED = [
    "127.0.0.1", "127.255.0.9", "::1",  # loopback
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "fc00::1", "fd12:3456::1",  # private
    "169.254.169.254", "fe80::1",  # link-local (cloud metadata lives here)
    "224.0.0.1", "239.255.255.250", "ff02::1",  # multicast
    "0.0.0.0", "::",  # unspecified  # noqa: S104 - values, never bound
    "240.0.0.1", "255.255.255.255", "100.64.0.1", "192.0.2.1", "198.18.0.1",  # reserved, shared, documentation
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::1", "2001:0:4136:e378::1",  # tunnels
]  # fmt: skip
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


def test_the_url_form() -> None:
    assert check_url_form("https://hooks.example.com/x?y=1", allow_insecure=False) == ("hooks.example.com", 443)
    for url in ("http://hooks.example.com/", "https:///x", "https://u:p@hooks.example.com/", "https://a.b/#f",
                "https://a.b:99999/", "https://a.b/" + "x" * 2048):  # fmt: skip
        with pytest.raises(AddressRefused):
            check_url_form(url, allow_insecure=False)
    assert check_url_form("http://127.0.0.1:8080/", allow_insecure=True) == ("127.0.0.1", 8080)


def test_an_address_written_in_the_url_is_checked_at_send() -> None:
    for host in ("127.0.0.1", "::1", "10.0.0.7", "169.254.169.254"):
        with pytest.raises(AddressRefused):
            check_send_target(host, allow_insecure=False)
        check_send_target(host, allow_insecure=True)
    check_send_target("93.184.216.34", allow_insecure=False)
    check_send_target("hooks.example.com", allow_insecure=False)  # names: the resolver checks them


class FixedResolver(AbstractResolver):
    """What a (rebinding) DNS answer says, without asking anyone."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
                for address in self.addresses]  # fmt: skip

    async def close(self) -> None:
        return None


async def test_the_resolver_hands_the_connector_only_checked_addresses() -> None:
    mixed = GuardedResolver(FixedResolver(["10.0.0.1", "93.184.216.34", "::1"]))
    assert [result["host"] for result in await mixed.resolve("hooks.example.com", 443)] == ["93.184.216.34"]
    rebound = GuardedResolver(FixedResolver(["127.0.0.1"]))
    with pytest.raises(OSError, match="no public address"):
        await rebound.resolve("hooks.example.com", 443)


def test_the_retry_schedule_and_its_scale() -> None:
    exact = RetrySchedule(1.0, jitter=lambda: 0.0)
    assert [exact.delay_ms(n) // 1000 for n in range(1, 10)] == [5, 30, 120, 600, 1800, 3600, 7200, 7200, 7200]
    assert exact.horizon_ms == 24 * 3600 * 1000
    assert exact.next_attempt_ms(attempts=1, failed_at_ms=0, give_up_ms=4_000) is None
    assert exact.next_attempt_ms(attempts=1, failed_at_ms=0, give_up_ms=5_000) == 5_000
    jittered = RetrySchedule(0.01)
    assert all(40 <= jittered.delay_ms(1) <= 60 for _ in range(50))
    assert jittered.horizon_ms == 864_000
