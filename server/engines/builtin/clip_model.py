"""The built-in CLIP: a small open_clip model trained on the procedural textures.

It uses open_clip's own ``CLIP`` class and the BPE tokenizer open_clip ships inside its package,
so nothing is downloaded. It scores images against prompts (ranking candidates, the ``rank``
kind) and its text tower conditions the built-in generator.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import open_clip
import torch
from open_clip.transformer import text_global_pool
from safetensors.torch import load_file, save_file

from .manifest import CLIP_WEIGHTS, SIZE

CONTEXT_LENGTH = 16  # captions are a handful of words; longer prompts are cut

CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    # a small ViT on 4 x 4 patches: it keeps the fine structure that tells patterns apart,
    # which a ResNet stem halves away twice; it also names held-out patterns more often for
    # the same training time, with a thirtieth of the ResNet's weights
    "vision_cfg": {
        "image_size": SIZE,
        "patch_size": 4,
        "layers": 4,
        "width": 64,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": CONTEXT_LENGTH,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 2,
    },
}

_tokenizer: open_clip.SimpleTokenizer | None = None


def tokenize(prompts: list[str]) -> torch.Tensor:
    """Token ids (N x CONTEXT_LENGTH) from the tokenizer bundled with open_clip."""
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)
    return _tokenizer([p.lower() for p in prompts])


def build_clip() -> open_clip.CLIP:
    return open_clip.CLIP(**CLIP_CONFIG)


def save_clip(model: open_clip.CLIP, path: Path = CLIP_WEIGHTS) -> None:
    # half precision halves the package size; the scores barely move
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()
    }
    save_file(tensors, str(path))


def load_clip(device: str = "cpu", path: Path = CLIP_WEIGHTS) -> open_clip.CLIP:
    model = build_clip()
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.eval().to(device)


def text_features(model: open_clip.CLIP, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token features (N x L x width) and the pooled, projected text embedding (N x embed).

    This is ``CLIP.encode_text`` with the per-token states kept: the generator attends to them.
    """
    x = model.token_embedding(tokens) + model.positional_embedding
    x = model.transformer(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    pooled = text_global_pool(x, tokens, model.text_pool_type)
    pooled = (
        model.text_projection(pooled)
        if isinstance(model.text_projection, torch.nn.Linear)
        else pooled @ model.text_projection
    )
    return x, pooled


def images_to_tensor(images: list[np.ndarray], device: str = "cpu") -> torch.Tensor:
    """RGB or RGBA uint8 images of any size -> N x 3 x SIZE x SIZE in [-1, 1]."""
    batch = []
    for image in images:
        rgb: np.ndarray = image[..., :3].astype(np.float32)
        if image.ndim == 3 and image.shape[2] == 4:
            # judge what is visible: transparent pixels count as mid gray
            alpha = image[..., 3:4].astype(np.float32) / 255.0
            rgb = rgb * alpha + 128.0 * (1 - alpha)
        if rgb.shape[:2] != (SIZE, SIZE):
            rgb = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        batch.append(rgb)
    array = np.stack(batch).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return torch.from_numpy(array).float().to(device)


class BuiltinClip:
    """Scores images against a prompt with the built-in CLIP (cosine similarity x 100)."""

    def __init__(self, model: open_clip.CLIP, device: str = "cpu") -> None:
        self.model = model
        self.device = device

    @torch.inference_mode()
    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        tokens = tokenize(prompts).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens), dim=-1)

    @torch.inference_mode()
    def embed_images(self, images: list[np.ndarray]) -> torch.Tensor:
        pixels = images_to_tensor(images, self.device)
        return torch.nn.functional.normalize(self.model.encode_image(pixels), dim=-1)

    def score(self, prompt: str, images: list[np.ndarray]) -> list[float]:
        """One score per image, higher = closer to the prompt. Images are uint8 RGB(A)."""
        if not images:
            return []
        sims = self.embed_images(images) @ self.embed_text([prompt]).T
        return [round(float(s) * 100.0, 4) for s in sims[:, 0]]


_loaded: dict[str, BuiltinClip] = {}
_lock = threading.Lock()


def load_builtin_clip(device: str = "cpu") -> BuiltinClip:
    """The shipped CLIP, loaded once per device and shared by the engines that rank with it."""
    with _lock:
        if device not in _loaded:
            _loaded[device] = BuiltinClip(load_clip(device), device)
        return _loaded[device]
