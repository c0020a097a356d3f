"""The handshake: token, Origin and Host checks, and the token file itself."""

from __future__ import annotations

import os
import stat

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import Unauthorized


def _handshake(server, **headers: str) -> int:
    """The HTTP status of a websocket handshake with these headers (101 = accepted)."""
    host = headers.pop("host", None)
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    if host is not None:
        extra["Host"] = host
    try:
        with connect(server.url, additional_headers=extra, proxy=None, open_timeout=10):
            return 101
    except InvalidStatus as exc:
        assert exc.response.body  # every refusal says why
        return exc.response.status_code


def test_token_file_is_private_and_random(server) -> None:
    mode = stat.S_IMODE(os.stat(server.home / "token").st_mode)
    assert mode == 0o600
    assert len(server.token) >= 32


def test_a_valid_token_is_accepted(server) -> None:
    assert _handshake(server, Authorization=f"Bearer {server.token}") == 101


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz", "bearer  "],
)
def test_missing_or_wrong_tokens_are_refused_at_the_handshake(server, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    assert _handshake(server, **headers) == 401


def test_browser_origins_are_refused_even_with_the_token(server) -> None:
    auth = {"Authorization": f"Bearer {server.token}"}
    assert _handshake(server, Origin="https://evil.example", **auth) == 403
    assert _handshake(server, Origin="null", **auth) == 403
    assert _handshake(server, Origin="http://localhost:3000", **auth) == 403


def test_dns_rebinding_host_is_refused(server) -> None:
    auth = {"Authorization": f"Bearer {server.token}"}
    assert _handshake(server, host=f"evil.example:{server.port}", **auth) == 403
    assert _handshake(server, host=f"localhost:{server.port}", **auth) == 101
    assert _handshake(server, host=f"127.0.0.1:{server.port + 1}", **auth) == 403


def test_allowlisted_origin_is_accepted(server_factory) -> None:
    srv = server_factory()
    (srv.home / "config.toml").write_text(
        '[server]\nallowed_origins = ["https://studio.example"]\n'
    )
    srv.stop()
    srv.start()
    auth = {"Authorization": f"Bearer {srv.token}"}
    assert _handshake(srv, Origin="https://studio.example", **auth) == 101
    assert _handshake(srv, Origin="https://other.example", **auth) == 403
    assert _handshake(srv, Origin="null", **auth) == 403


def test_clients_raise_the_matching_error_classes(server) -> None:
    with pytest.raises(Unauthorized):
        BlockingClient(server.url, "not-the-token").connect()
    client = BlockingClient(server.url, server.token)
    assert client.connect().version.startswith("1.")
    client.close()


def test_the_server_binds_loopback_by_default(server) -> None:
    assert server.url.startswith("ws://127.0.0.1:")


def test_wrong_path_is_not_found(server) -> None:
    try:
        with connect(
            server.url.replace("/v1", "/v0"),
            proxy=None,
            additional_headers={"Authorization": f"Bearer {server.token}"},
        ):
            status = 101
    except InvalidStatus as exc:
        status = exc.response.status_code
    assert status == 404
