"""The A1111 web-UI API (`serve --sdapi`), driven by the real clients: the `webuiapi` package,
and `requests` shaped exactly as AI-Render (Blender) sends them, credentials in the URL.

One server for the module; the test that switches the model through `options` runs last.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from conftest import ServerProcess
from PIL import Image

webuiapi = pytest.importorskip("webuiapi")

STRIPES = "red and white stripes"
REPO = Path(__file__).resolve().parents[1]


def test_compat_md_lists_exactly_the_routes_served() -> None:
    from brushlink.server.sdapi.catalog import EMPTY_LISTS

    source = "\n".join(p.read_text() for p in (REPO / "server" / "sdapi").glob("*.py"))
    served = {
        (path, method.upper())
        for method, path in re.findall(r'@api\.(get|post)\("/([^"]+)"', source)
    }
    served |= {(path, "GET") for path in EMPTY_LISTS}
    doc = (REPO / "docs" / "compat.md").read_text()
    table = doc.split("### What is answered", 1)[1].split("\n### ", 1)[0]
    listed = {
        (name, method)
        for names, method in re.findall(r"^\| (`[^|]+`) \| (GET|POST) \|", table, re.M)
        for name in re.findall(r"`([^`]+)`", names)
    }
    assert listed == served


@pytest.fixture(scope="module")
def a1111(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("sdapi-home")
    server = ServerProcess(home=home, args=["--sdapi", "127.0.0.1:0"]).start()
    assert server.sdapi_url.startswith("http://127.0.0.1:") and server.sdapi_url.endswith(
        "/sdapi/v1"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(a1111: ServerProcess) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=a1111.sdapi_url, username="artist", password=a1111.token)


def url_with_credentials(server: ServerProcess, path: str) -> str:
    """As AI-Render users write it in its preferences: http://user:TOKEN@host:port."""
    host_port = server.sdapi_url.removeprefix("http://").split("/")[0]
    return f"http://blender:{server.token}@{host_port}{path}"


def photo(image: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)).convert("RGB")


def test_lists_answer_as_a1111_does(api: webuiapi.WebUIApi) -> None:
    assert {"Euler a", "DPM++ 2M Karras", "DDIM", "LCM"} <= set(api.util_get_sampler_names())
    assert "karras" in api.util_get_scheduler_names()
    assert api.util_get_model_names()[0] == "builtin"  # the model that draws comes first
    assert api.get_loras() == [] and api.get_sd_vae() == []
    assert api.get_scripts() == {"txt2img": [], "img2img": []}
    assert api.get_upscalers()[0]["name"] == "None"


def test_txt2img_with_the_builtin_model(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(prompt=STRIPES, negative_prompt="blurry", width=64, height=48,
                         steps=8, seed=5, batch_size=2)  # fmt: skip
    assert len(result.images) == 2
    assert all(image.size == (64, 48) for image in result.images)
    info = result.info  # webuiapi parsed the `info` JSON string
    assert info["sd_model_name"] == "builtin" and sorted(info["all_seeds"]) == [5, 6]
    assert info["sampler_name"] == "Euler a"  # webuiapi's default, run as the nearest scheduler
    assert info["extra_generation_params"]["brushlink scheduler"] == "ddim"
    text = result.images[0].info["parameters"]  # A1111's PNG text chunk
    assert text.startswith(f"{STRIPES}\nNegative prompt: blurry\nSteps: 8, Sampler: Euler a")
    assert "Size: 64x48, Model: builtin" in text and "Seed: " in text
    assert result.parameters["prompt"] == STRIPES  # the request is echoed
    # png-info reads the parameters back
    read = api.png_info(result.images[0])
    assert read.info == text


def test_img2img_with_a_mask_fills_only_there(api: webuiapi.WebUIApi, coffee: np.ndarray) -> None:
    image = photo(coffee, (96, 64))
    mask = np.zeros((64, 96), np.uint8)
    mask[20:40, 30:60] = 255
    result = api.img2img(images=[image], mask_image=Image.fromarray(mask), width=96, height=64,
                         mask_blur=2, inpaint_full_res_padding=16)  # fmt: skip
    assert result.info["sd_model_name"] == "fill"  # no prompt: removed by the weight-free fill
    out = np.asarray(result.images[0].convert("RGB")).astype(int)
    before = np.asarray(image).astype(int)
    assert out.shape == before.shape
    far = np.ones_like(mask, bool)
    far[12:48, 22:68] = False  # beyond the mask, its grow and its feather
    assert np.abs(out - before)[far].max() == 0
    assert np.abs(out - before)[22:38, 32:58].mean() > 3  # the masked part was redrawn
    assert result.parameters["init_images"] is None  # not echoed back (include_init_images)


def test_img2img_without_a_mask_restyles_toward_the_prompt(
    api: webuiapi.WebUIApi, coffee: np.ndarray
) -> None:
    result = api.img2img(images=[photo(coffee, (80, 60))], prompt=STRIPES, width=64, height=64,
                         resize_mode=1, denoising_strength=0.5, steps=6, seed=11)  # fmt: skip
    assert result.images[0].size == (64, 64)  # fitted as resize_mode 1 (crop and resize) asks
    assert result.info["sd_model_name"] == "builtin"
    assert result.info["denoising_strength"] == 0.5 and result.info["all_seeds"] == [11]


def _long_txt2img(api: webuiapi.WebUIApi, box: dict, n_iter: int, batch: int) -> None:
    box["result"] = api.txt2img(prompt=STRIPES, width=64, height=64, steps=60,
                                batch_size=batch, n_iter=n_iter, seed=1)  # fmt: skip


def test_progress_is_seen_during_a_job(api: webuiapi.WebUIApi) -> None:
    box: dict = {}
    worker = threading.Thread(target=_long_txt2img, args=(api, box, 2, 2))
    worker.start()
    seen = []
    while worker.is_alive():
        seen.append(api.get_progress())
        time.sleep(0.05)
    worker.join()
    running = [p for p in seen if p["state"]["sampling_step"] > 0]
    assert running, seen[-3:]
    assert all(p["state"]["job_count"] == 2 for p in running)
    assert max(p["progress"] for p in running) > min(p["progress"] for p in running)
    assert {p["state"]["sampling_steps"] for p in running} == {60}
    previews = [p["current_image"] for p in running if p["current_image"]]
    assert previews and Image.open(io.BytesIO(base64.b64decode(previews[-1]))).format == "PNG"
    assert len(box["result"].images) == 4
    assert api.get_progress()["state"]["job_count"] == 0  # idle again


def test_interrupt_stops_the_request(api: webuiapi.WebUIApi) -> None:
    box: dict = {}
    worker = threading.Thread(target=_long_txt2img, args=(api, box, 4, 4))
    worker.start()
    deadline = time.monotonic() + 120
    while api.get_progress()["state"]["sampling_step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    interrupted_at = time.monotonic()
    api.interrupt()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert time.monotonic() - interrupted_at < 30
    result = box["result"]
    assert len(result.images) < 16 and result.info["brushlink"]["interrupted"] is True


def test_skip_stops_only_the_current_job(api: webuiapi.WebUIApi) -> None:
    box: dict = {}
    worker = threading.Thread(target=_long_txt2img, args=(api, box, 2, 1))
    worker.start()
    deadline = time.monotonic() + 120
    while api.get_progress()["state"]["sampling_step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    api.skip()
    worker.join(timeout=120)
    result = box["result"]
    assert len(result.images) == 1  # the first job was skipped, the second one ran
    assert result.info["all_seeds"] == [2] and result.info["brushlink"]["interrupted"] is False


def test_ai_render_img2img_and_upscale(a1111: ServerProcess, coffee: np.ndarray) -> None:
    """The requests AI-Render's automatic1111_api.py makes, with its headers and extra keys."""
    headers = {"User-Agent": "Blender/4.2.3 LTS", "Accept": "*/*",
               "Accept-Encoding": "gzip, deflate, br"}  # fmt: skip
    ok, encoded = cv2.imencode(
        ".png", cv2.cvtColor(cv2.resize(coffee, (96, 64)), cv2.COLOR_RGBA2BGR)
    )
    render = base64.b64encode(encoded.tobytes()).decode()
    params = {"prompt": STRIPES, "negative_prompt": "ugly", "width": 96, "height": 64,
              "image_similarity": 0.4, "seed": 7, "cfg_scale": 7, "steps": 6, "sampler": "Euler a",
              "denoising_strength": 0.6, "sampler_index": "Euler a",
              "init_images": ["data:image/png;base64," + render]}  # fmt: skip
    answer = requests.post(url_with_credentials(a1111, "/sdapi/v1/img2img"), json=params,
                           headers=headers, timeout=300)  # fmt: skip
    assert answer.status_code == 200, answer.text
    image = answer.json()["images"][0]
    assert not image.startswith("data:")  # raw base64, as AI-Render and webuiapi decode it
    assert Image.open(io.BytesIO(base64.b64decode(image))).size == (96, 64)

    listed = requests.get(url_with_credentials(a1111, "/sdapi/v1/upscalers"),
                          headers={"Accept": "application/json"}, timeout=5)  # fmt: skip
    # the zero-download upscaler is always there; ESRGAN files add more (docs/upscaling.md)
    assert [u["name"] for u in listed.json()] == ["None", "lanczos-sharp"]

    data = {"resize_mode": 0, "show_extras_results": True, "gfpgan_visibility": 0,
            "codeformer_visibility": 0, "codeformer_weight": 0, "upscaling_resize": 2.0,
            "upscaling_resize_w": 192, "upscaling_resize_h": 128, "upscaling_crop": True,
            "upscaler_1": "ESRGAN_4x", "upscaler_2": "None", "extras_upscaler_2_visibility": 0,
            "upscale_first": True, "image": "data:image/png;base64," + render}  # fmt: skip
    refused = requests.post(url_with_credentials(a1111, "/sdapi/v1/extra-single-image"),
                            json=data, headers=headers, timeout=30)  # fmt: skip
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert detail == "Invalid upscaler, needs to be one of these: None, lanczos-sharp."
    data["upscaler_1"] = "None"  # A1111 returns the picture as it is
    same = requests.post(url_with_credentials(a1111, "/sdapi/v1/extra-single-image"),
                         json=data, headers=headers, timeout=30)  # fmt: skip
    assert same.status_code == 200
    assert base64.b64decode(same.json()["image"]) == encoded.tobytes()

    data["upscaler_1"] = "lanczos-sharp"  # runs as an upscale job through the real engine
    doubled = requests.post(url_with_credentials(a1111, "/sdapi/v1/extra-single-image"),
                            json=data, headers=headers, timeout=120)  # fmt: skip
    assert doubled.status_code == 200, doubled.text
    big = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(doubled.json()["image"]))).convert("RGB")
    )
    assert big.shape == (128, 192, 3)
    # the picture is the render, larger: shrunk back it matches the render closely
    small = cv2.resize(big, (96, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    source = cv2.resize(coffee, (96, 64))[..., :3].astype(np.float32)
    assert np.abs(small - source).mean() < 4.0
    assert np.abs(big.astype(np.float32) - cv2.resize(source, (192, 128))).mean() < 12.0


def test_errors_in_a1111_shape(a1111: ServerProcess) -> None:
    missing = requests.get(url_with_credentials(a1111, "/sdapi/v1/nothing-here"), timeout=5)
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    sampler = requests.post(url_with_credentials(a1111, "/sdapi/v1/txt2img"),
                            json={"prompt": STRIPES, "sampler_index": "DPM2 a"}, timeout=30)  # fmt: skip
    assert sampler.status_code == 404 and sampler.json() == {"detail": "Sampler not found"}
    invalid = requests.post(url_with_credentials(a1111, "/sdapi/v1/txt2img"),
                            json={"prompt": STRIPES, "steps": "many"}, timeout=30)  # fmt: skip
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["steps"]
    too_many = requests.post(url_with_credentials(a1111, "/sdapi/v1/txt2img"),
                             json={"prompt": STRIPES, "steps": 5000}, timeout=30)  # fmt: skip
    assert too_many.status_code == 422
    assert too_many.json()["code"] == "invalid_field" and "`steps`" in too_many.json()["detail"]
    cannot = requests.post(url_with_credentials(a1111, "/sdapi/v1/txt2img"), timeout=30,
                           json={"prompt": STRIPES, "override_settings": {"sd_model_checkpoint": "fill"}})  # fmt: skip
    assert cannot.status_code == 400 and "cannot do `generate`" in cannot.json()["detail"]


def test_switching_the_model_through_options(api: webuiapi.WebUIApi, a1111: ServerProcess,
                                             coffee: np.ndarray) -> None:  # fmt: skip
    assert api.util_get_current_model() == "builtin"
    image = photo(coffee, (64, 48))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    asked = {"images": [image], "mask_image": Image.fromarray(mask), "prompt": STRIPES,
             "width": 64, "height": 48, "steps": 6}  # fmt: skip
    assert api.img2img(**asked).info["sd_model_name"] == "builtin"  # a prompt: the drawing model
    api.util_set_model("fill")
    assert api.get_options()["sd_model_checkpoint"] == "fill"
    assert api.img2img(**asked).info["sd_model_name"] == "fill"
    # a kind the chosen model cannot do keeps the server's own default
    assert (
        api.txt2img(prompt=STRIPES, width=32, height=32, steps=4).info["sd_model_name"] == "builtin"
    )
    unknown = requests.post(url_with_credentials(a1111, "/sdapi/v1/options"),
                            json={"sd_model_checkpoint": "nope [abc123]"}, timeout=5)  # fmt: skip
    assert unknown.status_code == 404 and "`nope`" in unknown.json()["detail"]
    api.set_options({"sd_model_checkpoint": "builtin [0000]"})
    assert api.util_get_current_model() == "builtin"
