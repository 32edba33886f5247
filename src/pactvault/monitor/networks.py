"""Client addresses: which one to believe, how to key it, and which "network" it belongs to.

Where a request comes from decides rate limits, blocks and the "new network" rule, so it must not
be something the client can choose. The TCP peer is the client, unless the peer is one of the
operator's trusted proxies (``PACTVAULT_TRUSTED_PROXIES``, CIDRs): then ``X-Forwarded-For`` is
read from the right, skipping trusted hops, and the first untrusted address is the client. With
no trusted proxy configured (the default) the header is ignored entirely: anyone can send it.

Keys: one per IPv4 address and per IPv6 /64 (``identity.throttle.ip_key``: a subscriber usually
holds a whole /64, so per-address IPv6 limits would be trivial to dodge). Networks, for "is this
a new place for this user?": /24 for IPv4 and /48 for IPv6 — GeoIP data is not available offline,
and a /24 or /48 is roughly one site or provider allocation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from pactvault.errors import InvalidInputError
from pactvault.identity.throttle import ip_key

__all__ = ["TrustedProxies", "address_key", "network_of", "parse_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(value: str | None) -> IPAddress | None:
    """The address, IPv4-mapped IPv6 unwrapped; ``None`` for anything that is not one."""
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(value: str | None) -> str | None:
    """The key limits and blocks use (``ip:203.0.113.7``, ``ip:2001:db8::/64``); ``None`` when
    ``value`` is not an address — such requests are never blocked or limited *by address*
    (there is nothing to key on), only by what else they present."""
    if parse_address(value) is None:
        return None
    return ip_key(value)


@lru_cache(maxsize=4096)
def network_of(value: str | None) -> str | None:
    """``203.0.113.0/24`` or ``2001:db8:1::/48``; ``None`` when ``value`` is not an address."""
    address = parse_address(value)
    if address is None:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class TrustedProxies:
    """The operator's proxies, and how to find the real client behind them."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        parsed: list[IPNetwork] = []
        for spec in networks:
            try:
                parsed.append(ipaddress.ip_network(spec.strip(), strict=False))
            except ValueError:
                raise InvalidInputError(
                    f"PACTVAULT_TRUSTED_PROXIES: {spec!r} is not an address or CIDR network"
                ) from None
        self.networks: tuple[IPNetwork, ...] = tuple(parsed)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, value: str | None) -> bool:
        address = parse_address(value)
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        """The client address: the peer, or — only if the peer is trusted — the right-most
        address of ``X-Forwarded-For`` that is not itself a trusted proxy.

        A malformed hop ends the walk at the last trusted hop (never at a value the client
        wrote), and a chain made only of trusted proxies yields its left-most address.
        """
        if not self.networks or not self.trusts(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        current = peer
        for hop in reversed(hops):
            if parse_address(hop) is None:
                return current
            current = str(parse_address(hop))
            if not self.trusts(current):
                return current
        return current
