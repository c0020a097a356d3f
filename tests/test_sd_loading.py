"""Stable Diffusion checkpoints load offline, from a diffusers folder and from a single file, and
only from safetensors inside the model folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from fixtures.tiny_sd import build_tiny_pipeline, build_tiny_sdxl_pipeline, save_single_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from brushlink.plugin.errors import EngineError, UnknownModel, Unsupported
from brushlink.server.engines.diffusers import loading
from brushlink.server.engines.diffusers.store import ModelFolders, ModelStore, checkpoint_dirs

CONFIGS = loading.CONFIGS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root with the same tiny pipeline as a diffusers folder and as a single file."""
    root = tmp_path_factory.mktemp("models")
    pipe = build_tiny_pipeline(seed=3)
    pipe.save_pretrained(root / "checkpoints" / "tiny-folder")
    save_single_file(pipe, root / "checkpoints" / "tiny-file.safetensors")
    return root


def _draw(pipe, seed: int = 7) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a red brick wall",
        height=64,
        width=64,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.images[0]


def test_tokenizer_rebuilt_from_open_clip_matches_open_clip() -> None:
    tokenizer = loading.clip_tokenizer("<|endoftext|>")
    prompt = "A watercolor of a Fox, jumping over 3 logs!"
    ours = tokenizer(prompt, padding="max_length", max_length=77).input_ids
    theirs = open_clip.get_tokenizer("ViT-L-14")([prompt])[0].tolist()
    assert ours[: ours.index(49407) + 1] == theirs[: theirs.index(49407) + 1]
    assert len(tokenizer) == 49408


@pytest.mark.parametrize(
    ("family", "component", "params"),
    [
        ("sd1", "unet", 859_520_964),
        ("sd2", "unet", 865_910_724),
        ("sdxl", "unet", 2_567_463_684),
        ("sd1", "vae", 83_653_863),
        ("sdxl", "vae", 83_653_863),
        ("sd1", "text_encoder", 123_060_480),
        ("sd2", "text_encoder", 340_387_840),
        ("sdxl", "text_encoder_2", 694_659_840),
    ],
)
def test_shipped_configs_describe_the_real_architectures(
    family: str, component: str, params: int
) -> None:
    """Each shipped config builds a model with the published parameter count (on the meta
    device: no memory, no weights)."""
    folder = CONFIGS / family / component
    with torch.device("meta"):
        if component == "unet":
            model = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder))
        elif component == "vae":
            model = AutoencoderKL.from_config(AutoencoderKL.load_config(folder))
        else:
            cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
            model = cls(CLIPTextConfig.from_pretrained(folder))
    assert sum(p.numel() for p in model.parameters()) == params
    index = json.loads((CONFIGS / family / "model_index.json").read_text())
    assert component in index


def test_single_file_detected_from_its_keys(models: Path) -> None:
    found = loading.detect_single_file(models / "checkpoints" / "tiny-file.safetensors")
    assert (found.family, found.inpaint, found.native_size) == ("sd1", False, 64)
    inpaint = models / "inpaint-only" / "tiny-inpaint.safetensors"
    save_single_file(build_tiny_pipeline(inpaint_unet=True), inpaint)
    assert loading.detect_single_file(inpaint).inpaint


def test_folder_and_single_file_load_the_same_model(models: Path) -> None:
    folder = loading.load_pipeline(models / "checkpoints" / "tiny-folder")
    single = loading.load_pipeline(models / "checkpoints" / "tiny-file.safetensors")
    reference = _draw(build_tiny_pipeline(seed=3))
    assert np.array_equal(_draw(folder), reference)
    assert np.array_equal(_draw(single), reference)


def test_loading_never_touches_the_network(models: Path, tmp_path: Path) -> None:
    """Both layouts load and generate with the hub switched off, an empty Hugging Face cache and
    every non-loopback connection refused."""
    script = textwrap.dedent(
        f"""
        import socket
        real_connect = socket.socket.connect
        def guarded(self, address):
            host = address[0] if isinstance(address, tuple) else address
            if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
                raise OSError(f"network blocked: {{address}}")
            return real_connect(self, address)
        socket.socket.connect = guarded
        socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError("blocked"))

        import torch
        torch.set_num_threads(1)
        from pathlib import Path
        from brushlink.server.engines.diffusers.loading import load_pipeline
        for name in ("tiny-folder", "tiny-file.safetensors"):
            pipe = load_pipeline(Path({str(models / "checkpoints")!r}) / name)
            pipe.set_progress_bar_config(disable=True)
            image = pipe("a cat", height=64, width=64, num_inference_steps=2,
                         output_type="np").images[0]
            assert image.shape == (64, 64, 3)
        print("offline ok")
        """
    )
    hf_home = tmp_path / "empty-hf-home"
    hf_home.mkdir()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(hf_home),
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "offline ok" in done.stdout
    assert list(hf_home.iterdir()) == []  # nothing cached, nothing fetched


def test_pickled_checkpoints_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "old.ckpt").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(Unsupported, match="pickle"):
        ModelFolders([folder]).resolve("old")
    with pytest.raises(Unsupported, match=r"\.safetensors"):
        loading.load_pipeline(folder / "old.ckpt")
    assert ModelFolders([folder]).list() == []


def test_diffusers_folder_with_pickled_weights_is_refused(tmp_path: Path) -> None:
    pipe = build_tiny_pipeline()
    pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert list((tmp_path / "pickled").rglob("*.bin"))
    with pytest.raises(Unsupported, match="pickle"):
        loading.load_pipeline(tmp_path / "pickled")


@pytest.mark.parametrize("name", ["../tiny-file", "..", "sub/tiny-file", "/etc/passwd", ".hidden"])
def test_names_cannot_leave_the_model_folders(models: Path, name: str) -> None:
    with pytest.raises(UnknownModel, match="not a valid model name"):
        ModelFolders(checkpoint_dirs([models])).resolve(name)


def test_symlink_escape_is_refused(models: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    save_single_file(build_tiny_pipeline(), outside / "secret.safetensors")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "escape.safetensors").symlink_to(outside / "secret.safetensors")
    (folder / "escape-dir").symlink_to(models / "checkpoints" / "tiny-folder")
    folders = ModelFolders([folder])
    assert folders.list() == []
    with pytest.raises(Unsupported, match="outside the model folder"):
        folders.resolve("escape")
    with pytest.raises(Unsupported, match="outside the model folder"):
        folders.resolve("escape-dir")


def test_listing_names_files_and_folders(models: Path) -> None:
    (models / "checkpoints" / "notes.txt").write_text("not a model")
    (models / "checkpoints" / "lora.safetensors").write_bytes(
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "
    )
    names = {c.name: c for c in ModelFolders(checkpoint_dirs([models])).list()}
    assert set(names) == {"tiny-folder", "tiny-file"}
    assert (
        names["tiny-file"].size_bytes
        == (models / "checkpoints/tiny-file.safetensors").stat().st_size
    )
    assert (
        ModelFolders(checkpoint_dirs([models])).resolve("tiny-file").path.suffix == ".safetensors"
    )


def test_store_keeps_warm_pipelines_and_evicts_least_recently_used(
    models: Path, tmp_path: Path
) -> None:
    for i in range(3):
        save_single_file(build_tiny_pipeline(seed=i), tmp_path / "ck" / f"m{i}.safetensors")
    folders = ModelFolders([tmp_path / "ck"])
    one = folders.resolve("m0").size_bytes
    store = ModelStore(budget_bytes=int(one * 2.5))
    m0 = store.get(folders.resolve("m0"))
    store.get(folders.resolve("m1"))
    assert store.get(folders.resolve("m0")) is m0  # warm: no reload
    assert store.loads == 2
    store.get(folders.resolve("m2"))  # over budget: m1 is the least recently used
    assert store.loaded_names() == ["m0", "m2"]
    assert store.loads == 3


def test_pipelines_of_one_checkpoint_share_components(models: Path) -> None:
    store = ModelStore()
    ckpt = ModelFolders(checkpoint_dirs([models])).resolve("tiny-file")
    txt2img = store.get(ckpt, "txt2img")
    img2img = store.get(ckpt, "img2img")
    inpaint = store.get(ckpt, "inpaint")
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(inpaint).__name__ == "StableDiffusionInpaintPipeline"
    assert txt2img.unet is img2img.unet is inpaint.unet
    assert txt2img.vae is inpaint.vae and txt2img.text_encoder is img2img.text_encoder
    assert store.loads == 1


def test_a_broken_file_fails_with_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "broken.safetensors").write_bytes(b"garbage")
    with pytest.raises(Unsupported, match="not a readable .safetensors"):
        loading.detect_single_file(folder / "broken.safetensors")
    with pytest.raises((Unsupported, EngineError)):
        loading.load_pipeline(folder / "broken.safetensors")


@pytest.mark.parametrize(
    ("spread", "in_channels", "v_prediction", "native"),
    [(0.3, 4, True, 768), (0.01, 4, False, 512), (0.3, 9, False, 512)],
)
def test_sd2_v_and_noise_prediction_models_are_told_apart(
    tmp_path: Path, spread: float, in_channels: int, v_prediction: bool, native: int
) -> None:
    """SD 2.x 768-v and 512-base share every shape; the spread of one norm bias tells them apart."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path / "sd2.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, in_channels, 3, 3),
            "cond_stage_model.model.token_embedding.weight": torch.zeros(8, 4),
            "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias": (
                torch.randn(320) * spread
            ).half(),
        },
        str(path),
    )
    found = loading.detect_single_file(path)
    assert (found.family, found.v_prediction, found.native_size) == ("sd2", v_prediction, native)


def test_sdxl_single_file_and_folder_load_the_same_model(tmp_path: Path) -> None:
    """SDXL's two text encoders (CLIP-L layout and OpenCLIP layout with projection) and its
    text_time UNet come back from the original single-file layout exactly."""
    pipe = build_tiny_sdxl_pipeline(seed=2)
    save_single_file(pipe, tmp_path / "xl.safetensors")
    pipe.save_pretrained(tmp_path / "xl-folder")
    assert loading.detect_single_file(tmp_path / "xl.safetensors").family == "sdxl"
    assert loading.detect_folder(tmp_path / "xl-folder").family == "sdxl"
    reference = _draw(pipe)
    single = loading.load_pipeline(tmp_path / "xl.safetensors")
    assert type(single).__name__ == "StableDiffusionXLPipeline"
    assert np.array_equal(_draw(single), reference)
    assert np.array_equal(_draw(loading.load_pipeline(tmp_path / "xl-folder")), reference)


def test_sd2_single_file_with_an_openclip_text_encoder_loads_the_same_model(tmp_path: Path) -> None:
    pipe = build_tiny_pipeline(seed=5, family="sd2")
    save_single_file(pipe, tmp_path / "sd2.safetensors", family="sd2")
    found = loading.detect_single_file(tmp_path / "sd2.safetensors")
    assert (found.family, found.v_prediction) == ("sd2", True)
    single = loading.load_pipeline(tmp_path / "sd2.safetensors")
    assert single.scheduler.config.prediction_type == "v_prediction"
    assert single.tokenizer.pad_token == "!"
    assert np.array_equal(_draw(single), _draw(pipe))
