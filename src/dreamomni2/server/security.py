"""Who may call the server: binding beyond loopback needs a key; requests carry it as ``Authorization: Bearer``."""

from __future__ import annotations

import ipaddress
import secrets
import socket

__all__ = ["check_bearer", "check_bind", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine (``127.0.0.0/8``, ``::1``)."""
    name = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    if name.lower() == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to serve a non-loopback address without an API key.

    Raises:
        ValueError: one line naming the host and the ways out.
    """
    if api_key is None and not is_loopback(host):
        raise ValueError(
            f"--host {host} is reachable from other machines; refusing to serve it without an API key: "
            "pass --api-key KEY (or set DREAMOMNI2_API_KEY), or bind 127.0.0.1"
        )


def check_bearer(header: str | None, api_key: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``api_key`` (always true when no key is set)."""
    if api_key is None:
        return True
    scheme, _, token = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), api_key.encode())
