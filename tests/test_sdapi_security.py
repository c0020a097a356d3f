"""The A1111 door refuses what the websocket refuses, with the same policy: no or a wrong token,
a foreign Origin, `Origin: null`, a Host that does not name the server; and limits before
decoding (base64 length, a PNG header's pixel count, the body's size). The server keeps serving
both doors after each refusal.
"""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Iterator

import pytest
import requests
from conftest import ServerProcess

from brushlink.plugin import png as pure_png
from brushlink.plugin.blocking import BlockingClient

ALLOWED = "https://studio.example"
MAX_MESSAGE = 2**20  # a small limit, so the tests send little


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("sdapi-security")
    (home / "config.toml").write_text(
        f'[server]\nallowed_origins = ["{ALLOWED}", "null"]\n'
        f"[limits]\nmax_message_bytes = {MAX_MESSAGE}\n"
    )
    server = ServerProcess(home=home, args=["--sdapi", "127.0.0.1:0"]).start()
    yield server
    server.stop()


def get(server: ServerProcess, path: str = "/options", **kwargs: object) -> requests.Response:
    return requests.get(server.sdapi_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


def post(server: ServerProcess, path: str, payload: dict, **kwargs: object) -> requests.Response:
    return requests.post(  # type: ignore[misc]
        server.sdapi_url + path, json=payload, timeout=30, auth=("x", server.token), **kwargs
    )


def still_serving(server: ServerProcess) -> None:
    assert get(server, auth=("anyone", server.token)).status_code == 200
    client = BlockingClient(server.url, server.token, reconnect=False)
    try:
        assert client.connect().version.startswith("1.")
    finally:
        client.close()


def test_the_token_is_required(guarded: ServerProcess) -> None:
    bare = get(guarded)
    assert bare.status_code == 401 and bare.json()["code"] == "unauthorized"
    assert bare.headers["WWW-Authenticate"].startswith("Basic")
    assert get(guarded, auth=("x", "wrong-token")).status_code == 401
    assert get(guarded, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert get(guarded, headers={"Authorization": "Basic !!!"}).status_code == 401
    # unknown paths too: nothing is answered before the token
    assert get(guarded, "/nothing").status_code == 401
    bearer = get(guarded, headers={"Authorization": f"Bearer {guarded.token}"})
    assert bearer.status_code == 200
    host_port = guarded.sdapi_url.removeprefix("http://").split("/")[0]
    in_url = requests.get(f"http://user:{guarded.token}@{host_port}/sdapi/v1/options", timeout=10)
    assert in_url.status_code == 200 and in_url.json()["sd_model_checkpoint"] == "builtin"
    still_serving(guarded)


def test_browser_origins_and_foreign_hosts_are_refused(guarded: ServerProcess) -> None:
    auth = ("x", guarded.token)
    foreign = get(guarded, auth=auth, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["code"] == "origin_refused"
    # `Origin: null` is refused even though the config lists it
    assert get(guarded, auth=auth, headers={"Origin": "null"}).status_code == 403
    assert get(guarded, auth=auth, headers={"Origin": ALLOWED}).status_code == 200
    port = guarded.sdapi_url.split(":")[2].split("/")[0]
    rebound = get(guarded, auth=auth, headers={"Host": f"evil.example:{port}"})
    assert rebound.status_code == 403
    assert get(guarded, auth=auth, headers={"Host": f"127.0.0.1:{guarded.port}"}).status_code == 403
    assert get(guarded, auth=auth, headers={"Host": f"localhost:{port}"}).status_code == 200
    still_serving(guarded)


def test_a_pixel_bomb_is_refused_before_decoding(guarded: ServerProcess) -> None:
    bomb = pure_png.assemble(100_000, 100_000, 6, zlib.compress(b"\x00" * 64))
    assert len(bomb) < 200
    payload = {"init_images": [base64.b64encode(bomb).decode()], "prompt": "stripes"}
    started = time.monotonic()
    refused = post(guarded, "/img2img", payload)
    assert time.monotonic() - started < 5
    assert refused.status_code == 413
    assert refused.json()["code"] == "too_many_pixels"
    assert "100000x100000" in refused.json()["detail"]
    # a JPEG's frame header is read the same way
    jpeg = b"\xff\xd8\xff\xc0\x00\x11\x08" + (60_000).to_bytes(2, "big") * 2 + b"\x03" + b"\x00" * 9
    payload = {"init_images": [base64.b64encode(jpeg + b"\xff\xd9").decode()], "prompt": "x"}
    refused = post(guarded, "/img2img", payload)
    assert refused.status_code == 413 and "60000x60000" in refused.json()["detail"]
    as_data_url = {"image": "data:image/png;base64," + base64.b64encode(bomb).decode(),
                   "upscaler_1": "None"}  # fmt: skip
    assert post(guarded, "/extra-single-image", as_data_url).status_code == 413
    still_serving(guarded)


def test_base64_and_bodies_over_the_limits_are_refused(guarded: ServerProcess) -> None:
    big = "A" * (MAX_MESSAGE * 4 // 3 + 400)  # decodes to a little more than the limit
    refused = post(guarded, "/img2img", {"init_images": [big]})
    assert refused.status_code == 413 and refused.json()["code"] == "message_too_big"
    huge = post(guarded, "/img2img", {"init_images": [big, big, big]})
    assert huge.status_code == 413 and "larger than" in huge.json()["detail"]
    garbage = post(guarded, "/img2img", {"init_images": ["not base64 at all, not an image"]})
    assert garbage.status_code == 422 and garbage.json()["code"] == "invalid_image"
    still_serving(guarded)
