"""Jobs through a real server over a real socket: results, concurrency, cancel, reconnect."""

from __future__ import annotations

import asyncio
import uuid

import cv2
import numpy as np
import pytest

from brushlink.plugin.client import Client
from brushlink.plugin.errors import JobWasCancelled, ServerUnavailable
from brushlink.plugin.protocol import (
    Accepted,
    Cancelled,
    Progress,
    Queued,
    Result,
    Started,
)
from brushlink.plugin.request import InpaintParams, Job, Request
from brushlink.server.images import decode_rgba, encode_rgba


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=240))


def _png(image: np.ndarray) -> bytes:
    return encode_rgba(np.ascontiguousarray(image))


def _sketch_request(image: np.ndarray, **spec: object) -> Job:
    return Job(Request(kind="style", style="sketch", **spec), image=_png(image))


def test_welcome_lists_limits_models_and_kinds(server) -> None:
    async def main():
        async with Client(server.url, server.token) as client:
            return client.welcome

    welcome = _run(main())
    assert welcome.version.startswith("1.")
    assert set(welcome.limits) >= {
        "max_message_bytes",
        "max_pixels",
        "max_prompt_chars",
        "max_queued_per_client",
    }
    names = {m.name: m for m in welcome.models}
    assert "inpaint" in names["fill"].kinds and "style" in names["filters"].kinds
    assert {"sketch", "watercolor", "oil", "cartoon", "detail", "pencil-color"} <= set(
        names["filters"].styles
    )
    # each model declares what it accepts, which the server checks requests against
    assert names["builtin"].accepts.candidates.high == 16
    assert "pattern_guidance" in names["builtin"].accepts.options
    assert names["fill"].accepts.slots == ["image", "mask"]
    assert {"inpaint", "style", "cancel", "collect", "previews"} <= set(welcome.capabilities)


def test_inpaint_removes_an_object_and_keeps_every_pixel_outside_the_mask(server, coffee) -> None:
    mask = np.zeros(coffee.shape[:2], np.uint8)
    mask[150:230, 380:470] = 255  # a patch of the saucer and table
    events: list[str] = []

    async def main() -> Result:
        async with Client(server.url, server.token) as client:
            request = Job(
                Request(kind="inpaint", model="fill", inpaint=InpaintParams(grow=4, feather=4)),
                image=_png(coffee),
                mask=_png(cv2.cvtColor(mask, cv2.COLOR_GRAY2RGBA)),
            )
            return await client.run(request, on_event=lambda e: events.append(e.type))

    result = _run(main())
    assert events[:3] == ["accepted", "queued", "started"] and events[-1] == "result"
    assert "progress" in events
    out = decode_rgba(result.images[0].data, "result")
    assert out.shape == coffee.shape
    # Outside the grown + feathered mask (4 + 4 px), every pixel is byte-identical.
    outside = cv2.dilate(mask, np.ones((21, 21), np.uint8)) == 0
    assert np.array_equal(out[outside], coffee[outside])
    # Inside, the fill continues its surroundings instead of leaving a hole or a flat patch.
    ring = (cv2.dilate(mask, np.ones((31, 31), np.uint8)) > 0) & (mask == 0)
    inside = mask > 0
    fill_mean = out[inside][:, :3].mean(axis=0)
    ring_mean = coffee[ring][:, :3].mean(axis=0)
    assert np.abs(fill_mean - ring_mean).max() < 40
    assert out[inside][:, :3].std() > 2
    assert result.metadata["model"] == "fill" and result.metadata["timings"]["run_s"] > 0


def test_style_sketch_returns_a_grey_pencil_drawing(server, chelsea) -> None:
    async def main() -> Result:
        async with Client(server.url, server.token) as client:
            return await client.run(_sketch_request(chelsea))

    out = decode_rgba(_run(main()).images[0].data, "result")
    assert out.shape == chelsea.shape
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    # A sketch is lighter than the photo (paper shows through) with dark strokes on its edges.
    grey = cv2.cvtColor(chelsea[..., :3], cv2.COLOR_RGB2GRAY)
    assert out[..., 0].mean() > grey.mean() + 10
    edges = cv2.Canny(grey, 80, 160) > 0
    assert out[..., 0][edges].mean() < out[..., 0][~edges].mean() - 40


def test_eight_clients_with_25_jobs_each_get_every_result_exactly_once(server) -> None:
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (24, 24, 4), dtype=np.uint8) for _ in range(8)]
    for tile in tiles:
        tile[..., 3] = 255

    async def one_client(index: int) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        async with Client(server.url, server.token) as client:
            handles = [
                await client.submit(
                    Job(
                        Request(kind="style", style="detail", strength=0.0),
                        image=_png(tiles[index]),
                    )
                )
                for _ in range(25)
            ]
            for handle in handles:
                finals = []
                async for event in handle.events():
                    seen.setdefault(handle.job_id, []).append(event.type)
                    if isinstance(event, Result):
                        finals.append(event)
                (result,) = finals
                # strength 0 returns the input: each client gets its own image back.
                out = decode_rgba(result.images[0].data, "result")
                assert np.array_equal(out, tiles[index])
        return seen

    async def main():
        return await asyncio.gather(*(one_client(i) for i in range(8)))

    everything = _run(main())
    assert sum(len(seen) for seen in everything) == 200
    for seen in everything:
        for types in seen.values():
            assert types.count("result") == 1
            assert types.count("failed") == types.count("cancelled") == 0


def test_cancel_a_queued_job_and_priority_orders_the_queue(server, astronaut) -> None:
    # keeps the worker busy for seconds (a filter on a big image took a fraction of one, and a
    # busy machine could finish it before the rest of the queue was in)
    slow = Request(
        kind="generate", model="builtin", prompt="red stripes", width=64, height=64, steps=30
    )

    async def main():
        async with Client(server.url, server.token) as client:
            blocker = await client.submit(Job(slow))
            low = await client.submit(_sketch_request(astronaut[:64, :64], priority=-5))
            doomed = await client.submit(_sketch_request(astronaut[:64, :64]))
            high = await client.submit(_sketch_request(astronaut[:64, :64], priority=5))
            await client.cancel(doomed.job_id)
            with pytest.raises(JobWasCancelled):
                await doomed.result()
            order = []

            async def finish(handle, name):
                await handle.result()
                order.append(name)

            await asyncio.gather(
                finish(blocker, "blocker"), finish(low, "low"), finish(high, "high")
            )
            return order

    assert _run(main()) == ["blocker", "high", "low"]


def test_results_survive_a_disconnect_and_are_collected_after_reconnecting(server, coffee) -> None:
    request = _sketch_request(coffee)

    async def submit_and_leave() -> None:
        client = Client(server.url, server.token, reconnect=False)
        await client.connect()
        handle = await client.submit(request)
        async for event in handle.events():
            if isinstance(event, Accepted):
                break
        await client.close()  # gone before the result

    async def come_back() -> list:
        client = Client(server.url, server.token)
        await client.connect()
        (handle,) = await client.collect([request.job_id])
        events = [event async for event in handle.events()]
        await client.close()
        return events

    _run(submit_and_leave())
    events = _run(come_back())
    assert isinstance(events[-1], Result)
    out = decode_rgba(events[-1].images[0].data, "result")
    assert out.shape == coffee.shape and np.array_equal(out[..., 0], out[..., 2])


def test_resubmitting_the_same_job_id_attaches_instead_of_running_twice(server, coffee) -> None:
    request = _sketch_request(coffee[:128, :128])

    async def main():
        async with Client(server.url, server.token) as first:
            result = await first.run(request)
        async with Client(server.url, server.token) as second:
            again = await second.run(request)  # same job id, same request
        return result, again

    result, again = _run(main())
    assert result.metadata == again.metadata  # the stored answer, not a second run
    assert result.images[0].data == again.images[0].data


def test_collect_of_an_unknown_job_says_so(server) -> None:
    async def main():
        async with Client(server.url, server.token) as client:
            (handle,) = await client.collect([str(uuid.uuid4())])
            return [event async for event in handle.events()]

    (event,) = _run(main())
    assert event.type == "failed" and event.code == "unknown_job"


def test_event_stream_is_typed_and_ordered(server, astronaut) -> None:
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    mask[200:260, 200:260] = 255

    async def main():
        async with Client(server.url, server.token) as client:
            handle = await client.submit(
                Job(
                    Request(kind="inpaint", model="fill"),
                    image=_png(astronaut),
                    mask=_png(cv2.cvtColor(mask, cv2.COLOR_GRAY2RGBA)),
                )
            )
            return [event async for event in handle.events()]

    events = _run(main())
    assert isinstance(events[0], Accepted) and isinstance(events[1], Queued)
    assert isinstance(events[2], Started) and isinstance(events[-1], Result)
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps == sorted(steps) and steps[-1] == events[-2].total
    assert not any(isinstance(e, Cancelled) for e in events)


def test_cancel_a_running_job_stops_it_at_its_next_step(server, astronaut) -> None:
    # Twenty separate holes: one progress step per hole.
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    for i in range(20):
        y, x = 40 + (i // 5) * 110, 40 + (i % 5) * 95
        mask[y : y + 30, x : x + 30] = 255

    async def main():
        async with Client(server.url, server.token) as client:
            handle = await client.submit(
                Job(
                    Request(kind="inpaint", model="fill"),
                    image=_png(astronaut),
                    mask=_png(cv2.cvtColor(mask, cv2.COLOR_GRAY2RGBA)),
                )
            )
            steps = []
            async for event in handle.events():
                if isinstance(event, Progress):
                    steps.append(event.step)
                    if event.step == 2:  # the first hole is filled: cancel now
                        await client.cancel(handle.job_id)
                final = event
            return steps, final, event.total if isinstance(event, Progress) else None

    steps, final, _ = _run(main())
    assert isinstance(final, Cancelled)
    assert max(steps) < 20  # it stopped long before the 22 steps of the whole job


def test_client_reconnects_after_a_server_restart_and_gets_its_result(
    server_factory, astronaut
) -> None:
    srv = server_factory()
    big = cv2.resize(astronaut, (1536, 1536))

    async def main():
        async with Client(srv.url, srv.token, max_reconnect_delay=0.5) as client:
            handle = await client.submit(
                Job(Request(kind="style", style="watercolor"), image=_png(big))
            )
            events = []
            async for event in handle.events():
                events.append(event.type)
                if event.type == "started" and events.count("started") == 1:
                    # The server dies mid-job and comes back on the same port with the same
                    # token; it has forgotten the job, so the client submits it again.
                    await asyncio.to_thread(srv.kill)
                    await asyncio.to_thread(srv.start)
            return events, event

    events, final = _run(main())
    assert isinstance(final, Result), events
    assert events.count("accepted") == 2  # once per server life
    out = decode_rgba(final.images[0].data, "result")
    assert out.shape == (1536, 1536, 4)


def test_submit_connects_a_client_that_never_connected(server, chelsea) -> None:
    async def main():
        client = Client(server.url, server.token)
        try:
            return await client.run(_sketch_request(chelsea[:64, :64]))
        finally:
            await client.close()

    assert _run(main()).images[0].width == 64


def test_submit_to_a_server_that_is_not_there_fails_clearly() -> None:
    async def main():
        await Client("ws://127.0.0.1:1/v1", "token").run(
            _sketch_request(np.zeros((8, 8, 4), np.uint8))
        )

    with pytest.raises(ServerUnavailable, match="cannot be reached"):
        _run(main())


def test_a_loopback_client_gets_raw_pixels_in_its_own_order_and_may_send_them(
    server, chelsea
) -> None:
    from brushlink.plugin.frames import Pixels

    height, width = chelsea.shape[:2]
    bgra = Pixels(width, height, cv2.cvtColor(chelsea, cv2.COLOR_RGBA2BGRA).tobytes(), "bgra8")

    async def main(encodings: tuple[str, ...], image: bytes | Pixels):
        async with Client(server.url, server.token, encodings=encodings) as client:
            assert client.welcome is not None
            seen = (client.welcome.encoding, client.welcome.encodings)
            result = await client.run(Job(Request(kind="style", style="sketch"), image=image))
            return seen, result.images[0].data

    (png_link, png_out) = _run(main(("png",), _png(chelsea)))
    (raw_link, raw_out) = _run(main(("bgra8", "png"), bgra))
    assert png_link == ("png", ["rgba8", "bgra8", "gray8"])  # loopback: raw uploads welcome
    assert raw_link[0] == "bgra8"
    assert isinstance(raw_out, Pixels) and raw_out.layout == "bgra8"
    # the same picture either way: the raw upload decoded as the PNG did, and back
    expected = cv2.cvtColor(decode_rgba(png_out, "r"), cv2.COLOR_RGBA2BGRA)
    assert raw_out.data == expected.tobytes()


def test_only_a_loopback_link_is_offered_raw_pixels() -> None:
    from types import SimpleNamespace

    from brushlink.server.transport import negotiate

    def ws(address: str, offered: str):
        return SimpleNamespace(
            remote_address=(address, 50000),
            request=SimpleNamespace(headers={"Brushlink-Encodings": offered}),
        )

    assert negotiate(ws("127.0.0.1", "bgra8, png")) == ("bgra8", ["rgba8", "bgra8", "gray8"])
    assert negotiate(ws("::1", "rgba8"))[0] == "rgba8"
    assert negotiate(ws("127.0.0.1", "webp, png")) == ("png", ["rgba8", "bgra8", "gray8"])
    assert negotiate(ws("192.168.1.20", "bgra8, png")) == ("png", [])  # a remote link: PNG
