"""Whose address a request is from: one answer for everything that keys on it — sign-in
lockouts (django-axes calls :func:`client_ip` through ``AXES_CLIENT_IP_CALLABLE``), the rate
limits (booking.throttle) and the audit log (booking.access.audit).

Without ``BEHIND_PROXY`` the client is the connection's peer, ``REMOTE_ADDR``: anybody can send
an ``X-Forwarded-For`` header, so none is read. Behind the reverse proxy of docs/operations.md
every connection comes from the proxy, and each of ``PROXY_COUNT`` proxies appends the address it
saw to ``X-Forwarded-For``: the client is the ``PROXY_COUNT``-th address from the right, and
whatever stands further left was written by the client and is ignored. With ``TRUSTED_PROXIES``
set, a connection from any other peer went around the proxy, and its own address counts, never
its headers.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest
from ipware import get_client_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, or None when the connection has none (a Unix socket)."""
    peer = _address(request.META.get("REMOTE_ADDR"))
    if not settings.BEHIND_PROXY:
        return peer
    if settings.TRUSTED_PROXIES and not _trusted(peer, tuple(settings.TRUSTED_PROXIES)):
        return peer
    forwarded, _routable = get_client_ip(
        request,
        # The proxy nearest us is the peer, not in the header: django-ipware counts only the
        # proxies the header lists after the client, one fewer than PROXY_COUNT.
        proxy_count=settings.PROXY_COUNT - 1,
        request_header_order=["HTTP_X_FORWARDED_FOR"],
        # Not strict: a client that sends its own entries (or garbage) ahead of the ones our
        # proxies append must not push everybody back onto the proxy's address.
        strict=False,
        algorithm="modern",
    )
    # No header, or fewer entries than proxies: the request did not come through all of them.
    return forwarded or peer


def _address(raw: str | None) -> str | None:
    try:
        ip = ipaddress.ip_address((raw or "").strip())
    except ValueError:
        return None
    # An IPv4 client on a dual-stack socket reads ::ffff:203.0.113.7; it is 203.0.113.7.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@cache
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(peer: str | None, entries: tuple[str, ...]) -> bool:
    if peer is None:
        return False
    ip = ipaddress.ip_address(peer)
    return any(ip.version == net.version and ip in net for net in _networks(entries))
