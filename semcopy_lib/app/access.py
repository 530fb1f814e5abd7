"""Who may use a served semcopy (dashboard or API): the access token."""

from __future__ import annotations

import ipaddress
import os
import secrets

TOKEN_ENV = "SEMCOPY_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_token(host: str, token: str | None = None, always: bool = False) -> str:
    """The token to ask for: ``token`` (or ``$SEMCOPY_TOKEN``) when given; else none on a loopback
    address unless ``always`` (one click on this machine), else a new random one (anyone who can reach
    the port could otherwise search and add to the gallery)."""
    token = token or os.environ.get(TOKEN_ENV)
    if token:
        return token
    return "" if is_loopback(host) and not always else secrets.token_urlsafe(24)
