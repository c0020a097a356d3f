"""The A1111 door's guard: the websocket's handshake policy on every HTTP request.

Before any route runs, and before the body is read, the request passes ``HandshakePolicy`` from
``server/auth.py`` (Origin, Host, then the token: ``Authorization: Bearer TOKEN`` or HTTP Basic
with any user name and the token as its password), so both doors refuse exactly the same
things. The body is then read up to a size limit (its ``Content-Length`` is checked first), so a
client cannot make the server hold more than the limit.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brushlink.plugin.errors import Unauthorized

from ..auth import HandshakePolicy, status_for
from ..config import Limits

log = logging.getLogger("brushlink.sdapi")


def max_body_bytes(limits: Limits) -> int:
    """Two images at the message limit, in base64, and room for the rest of the JSON."""
    return 2 * (limits.max_message_bytes * 4 // 3 + 4) + 2**20


class Guard:
    """ASGI middleware: the policy's checks, then the body read within its limit."""

    def __init__(self, app: ASGIApp, policy: HandshakePolicy, max_body: int) -> None:
        self.app = app
        self.policy = policy
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        err = self.policy.check(headers)
        if err is not None:
            log.warning("refused an A1111 API request: %s", err.code)
            extra = {"WWW-Authenticate": 'Basic realm="brushlink"'}
            response = JSONResponse(
                {"detail": err.message, "code": err.code},
                status_code=int(status_for(err)),
                headers=extra if isinstance(err, Unauthorized) else None,
            )
            await response(scope, receive, send)
            return
        body = await self._read_body(headers, receive)
        if body is None:
            response = JSONResponse(
                {
                    "detail": f"The request is larger than the {self.max_body / 2**20:.0f} MiB "
                    "this server reads; send fewer or smaller images at once.",
                    "code": "message_too_big",
                },
                status_code=413,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes | None:
        """The whole body, or None when it is over the limit (declared or sent)."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the route will see the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then waits as the real one."""
    sent = False

    async def replay() -> MutableMapping[str, Any] | Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
