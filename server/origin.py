"""Where a request comes from: the client's address behind trusted proxies, and the audit
log's origin (domain.audit.ORIGIN) for everything the request runs."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from starlette.requests import HTTPConnection

from domain.audit import ORIGIN, Origin

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def _address(text: str) -> Address | None:
    """An IP address from a forwarded hop or a peer: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`,
    `::1`; None when it is not one."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def forwarded_client(
    peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]
) -> str | None:
    """The client's address: the direct peer, unless it is a trusted proxy; then the
    right-most `X-Forwarded-For` hop that is not itself a trusted proxy (each proxy appends
    the address it was called from, so hops left of that one are the client's say). When
    every hop is trusted the left-most is the client; a hop that is not an address ends the
    walk at the last trusted one."""
    if not trusted:
        return peer
    peer_address = _address(peer) if peer else None
    if peer_address is None or not any(peer_address in network for network in trusted):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    last = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        if not any(address in network for network in trusted):
            return str(address)
        last = address
    return str(last)


def client_address(connection: HTTPConnection) -> str | None:
    """The client's address of a request or websocket, as the middleware found it."""
    state = connection.scope.get("state", {})
    if "client_address" in state:
        return state["client_address"]
    return connection.client.host if connection.client else None


class ClientOriginMiddleware:
    """For every HTTP request and websocket: the client's address in the scope's state
    (`client_address`), and the audit origin (that address and the request id, so this runs
    inside RequestIdMiddleware) set while the app handles it. Tasks a websocket starts for its
    operations inherit it."""

    def __init__(self, app, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted = tuple(ipaddress.ip_network(item, strict=False) for item in trusted_proxies)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-for"
        ]
        address = forwarded_client(peer[0] if peer else None, forwarded, self.trusted)
        state = scope.setdefault("state", {})
        state["client_address"] = address
        token = ORIGIN.set(Origin(address, state.get("request_id")))
        try:
            await self.app(scope, receive, send)
        finally:
            ORIGIN.reset(token)
