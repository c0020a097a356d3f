"""Score images against a prompt with a user's open_clip weights (the DALL·E + CLIP recipe).

A CLIP model is two files in ``models/clip/``:

    <name>.safetensors   the weights (open_clip state dict; pickles are refused)
    <name>.json          either {"model": "ViT-B-32"} naming one of open_clip's built-in
                         architectures, or a full open_clip model config
                         ({"embed_dim": ..., "vision_cfg": ..., "text_cfg": ...})

Nothing is downloaded: open_clip builds the architecture from its packaged configs and the
tokenizer from the BPE vocabulary it ships. Architectures whose tokenizer lives on a hub
(``hf_tokenizer_name``) are refused.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brushlink.plugin.errors import EngineError, Unsupported

_register_lock = threading.Lock()


@dataclass(frozen=True)
class ClipFiles:
    name: str
    weights: Path
    config: Path

    @property
    def size_bytes(self) -> int:
        return self.weights.stat().st_size


def find_clips(folders: list[Path]) -> list[ClipFiles]:
    """Every ``<name>.safetensors`` with a ``<name>.json`` beside it, inside the folders."""
    found: dict[str, ClipFiles] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        real_folder = folder.resolve()
        for weights in sorted(folder.glob("*.safetensors")):
            config = weights.with_suffix(".json")
            if not config.is_file() or weights.stem in found:
                continue
            try:  # a link leading out of the model folder is never loaded
                weights.resolve(strict=True).relative_to(real_folder)
                config.resolve(strict=True).relative_to(real_folder)
            except (OSError, ValueError):
                continue
            found[weights.stem] = ClipFiles(weights.stem, weights, config)
    return list(found.values())


def _architecture(files: ClipFiles) -> str:
    """The open_clip model name to build, registering a full config under a private name."""
    import open_clip

    try:
        data = json.loads(files.config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Unsupported(f"`{files.config.name}` is not valid JSON: {exc}", field="model") from exc
    if isinstance(data, dict) and isinstance(data.get("model"), str):
        name = data["model"]
        if name not in open_clip.list_models():
            raise Unsupported(
                f"`{files.config.name}` names `{name}`, which open_clip does not know.",
                field="model",
            )
        cfg = open_clip.get_model_config(name) or {}
    elif isinstance(data, dict) and "embed_dim" in data and "vision_cfg" in data:
        name = f"brushlink-{files.name}"
        cfg = data
        with _register_lock:
            from open_clip import factory

            factory._MODEL_CONFIGS[name] = data  # open_clip's registry of architectures
    else:
        raise Unsupported(
            f'`{files.config.name}` must be {{"model": "<open_clip name>"}} or an open_clip '
            "model config with embed_dim, vision_cfg and text_cfg.",
            field="model",
        )
    if cfg.get("text_cfg", {}).get("hf_tokenizer_name"):
        raise Unsupported(
            f"`{files.name}` needs a tokenizer from the Hugging Face hub; brushlink loads CLIP "
            "models offline only (use an architecture with open_clip's own tokenizer).",
            field="model",
        )
    return name


class ClipRanker:
    """``score(prompt, images)`` -> cosine similarity x 100 per image (higher is closer)."""

    def __init__(self, files: ClipFiles, device: str = "cpu") -> None:
        import open_clip

        if files.weights.suffix.lower() != ".safetensors":
            raise Unsupported("CLIP weights must be a .safetensors file.", field="model")
        arch = _architecture(files)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch,
                pretrained=str(files.weights),
                device=device,
                pretrained_text=False,  # never fetch a text tower's base weights
                weights_only=True,
            )
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            raise EngineError(f"Could not load the CLIP model `{files.name}`: {exc}") from exc
        self.name = files.name
        self.device = device
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)

    def score(self, prompt: str, images: list[np.ndarray]) -> list[float]:
        import torch
        from torch.nn.functional import normalize

        if not images:
            return []
        with torch.inference_mode():
            pixels = torch.stack([self.preprocess(_to_pil(im)) for im in images]).to(self.device)
            tokens = self.tokenizer([prompt]).to(self.device)
            image_emb = normalize(self.model.encode_image(pixels).float(), dim=-1)
            text_emb = normalize(self.model.encode_text(tokens).float(), dim=-1)
            sims = (image_emb @ text_emb.T)[:, 0]
        return [round(float(s) * 100.0, 4) for s in sims]


def _to_pil(image: np.ndarray) -> Any:
    """RGBA uint8 -> RGB, transparent pixels shown as mid gray (what a viewer would judge)."""
    from PIL import Image

    rgb = image[..., :3].astype(np.float32)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        rgb = rgb * alpha + 128.0 * (1.0 - alpha)
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def clip_info(files: ClipFiles) -> dict[str, Any]:
    return {"name": files.name, "size_bytes": files.size_bytes}
