"""Handshake checks: Host, Origin, then the token. Any web page can open a websocket to
localhost, so loopback alone protects nothing.

- A browser always sends ``Origin``; native clients (the bridges) send none. Origins are refused
  unless allowlisted, and ``Origin: null`` (sandboxed frames, file:// pages) is always refused.
- ``Host`` must name the address served: a DNS-rebinding page reaches 127.0.0.1 under its own
  host name, and is refused here.
- The token travels as ``Authorization: Bearer <token>``, or as the password of HTTP Basic
  credentials (any user name: A1111 API clients put ``user:TOKEN@`` in their URL), and is
  compared in constant time.

The websocket's handshake and the A1111 API's HTTP requests are checked by the same policy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from http import HTTPStatus

from brushlink.plugin.errors import BrushlinkError, OriginRefused, Unauthorized

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class HandshakePolicy:
    token: str
    host: str
    port: int
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    def host_names(self) -> set[str]:
        names = {self.host, *self.allowed_hosts}
        if self.host in LOOPBACK_NAMES:
            names.update(LOOPBACK_NAMES)
        return {n.lower() for n in names}

    def check(self, headers: dict[str, str]) -> BrushlinkError | None:
        """None if the handshake may proceed, else the error to refuse it with."""
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or origin not in self.allowed_origins):
            return OriginRefused(
                f"Connections from the web origin `{origin[:100]}` are refused; "
                "add it to [server] allowed_origins to allow it."
            )
        if self.host not in WILDCARDS and not self._host_ok(headers.get("host", "")):
            return OriginRefused("The Host header does not name this server.")
        token = presented_token(headers.get("authorization", ""))
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return Unauthorized(
                "A valid token is required: send `Authorization: Bearer <token>` (or HTTP Basic "
                "credentials with the token as the password) with the token from the server's "
                "BRUSHLINK_HOME/token file."
            )
        return None

    def _host_ok(self, host: str) -> bool:
        host = host.strip().lower()
        if host.startswith("["):  # [::1]:7437
            name, _, rest = host[1:].partition("]")
            port = rest.lstrip(":")
        else:
            name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        if port and port != str(self.port):
            return False
        return name in self.host_names() or f"[{name}]" in self.host_names()


def presented_token(authorization: str) -> str | None:
    """The token in an ``Authorization`` header: a Bearer token, or a Basic password."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon else None
    return None


def status_for(err: BrushlinkError) -> HTTPStatus:
    return HTTPStatus.UNAUTHORIZED if isinstance(err, Unauthorized) else HTTPStatus.FORBIDDEN
