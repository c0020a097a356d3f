"""LoRAs, textual-inversion embeddings and VAEs: found in the model folders, their family read
from their headers (never their weights), and attached to the shared pipeline for one job only.

Families are told apart as the files themselves tell: SDXL add-ons have two text encoders
(kohya's ``lora_te1_``/``lora_te2_``, diffusers' ``text_encoder_2.``, an embedding's
``clip_g``) or SDXL's block names; among the others a 1024-wide text encoder is SD 2.x and
anything else SD 1.x. The metadata kohya writes (``ss_base_model_version``) wins when present.

``attached`` applies a job's LoRAs (weight 0: not loaded at all, so the picture is exactly the
one without it), the embeddings its prompts name (A1111's way: the file's name is the word),
and its VAE, and removes all of them afterwards, whatever happens: the UNet, text encoders and
VAE are shared by every pipeline of the checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from brushlink.plugin.capabilities import AddonCard
from brushlink.plugin.errors import EngineError
from brushlink.plugin.request import Request

from ..kit import model_files
from .loading import CONFIGS, parse_header

log = logging.getLogger(__name__)

ADDON_KINDS = ("lora", "controlnet", "vae", "embedding")
_SDXL_BLOCKS = ("input_blocks", "output_blocks", "middle_block", "label_emb")
_BASE_VERSIONS = {"sd_v1": "sd1", "sd_v2": "sd2", "sdxl_base_v1-0": "sdxl", "sdxl": "sdxl"}


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Tensor entries and metadata of a .safetensors file, from its header alone."""
    header = parse_header(path)
    metadata = header.pop("__metadata__", None) or {}
    return header, {str(k): str(v) for k, v in metadata.items()}


def _width(header: dict[str, Any], pattern: str, axis: int) -> int | None:
    for key, entry in header.items():
        if re.search(pattern, key) and isinstance(entry, dict):
            shape = entry.get("shape") or []
            if len(shape) > axis:
                return int(shape[axis])
    return None


def lora_family(header: dict[str, Any], metadata: dict[str, str]) -> str:
    version = metadata.get("ss_base_model_version", "")
    for prefix, family in _BASE_VERSIONS.items():
        if version.startswith(prefix):
            return family
    keys = list(header)
    two_encoders = any(k.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for k in keys)
    if two_encoders or any(b in k for k in keys for b in _SDXL_BLOCKS):
        return "sdxl"
    # the cross-attention's key projection reads the text encoder's width
    width = _width(header, r"attn2.to_k.*(lora_down|lora_A)", 1)
    return "sd2" if width == 1024 else "sd1"


def embedding_family(header: dict[str, Any]) -> str:
    if "clip_g" in header:
        return "sdxl"
    width = _width(header, r"^(emb_params|string_to_param|.*)$", 1)
    return "sd2" if width == 1024 else "sd1"


def controlnet_family(path: Path) -> str:
    if path.is_dir():
        config = json.loads((path / "config.json").read_text())
        if config.get("addition_embed_type") == "text_time":
            return "sdxl"
        return "sd2" if config.get("cross_attention_dim") == 1024 else "sd1"
    header, _ = read_header(path)
    if any("label_emb" in k or "add_embedding" in k for k in header):
        return "sdxl"
    width = _width(header, r"attn2.to_k.weight$", 1)
    return "sd2" if width == 1024 else "sd1"


def family_of(kind: str, path: Path) -> str:
    """The family an add-on file is for ("" when its files do not tell, as for VAEs)."""
    if kind == "controlnet":
        return controlnet_family(path)
    if kind == "vae" or path.is_dir():
        return ""
    header, metadata = read_header(path)
    return lora_family(header, metadata) if kind == "lora" else embedding_family(header)


class Addons:
    """The add-ons in the model roots, listed cheaply and cached by file modification time."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self._families: dict[tuple[Path, float], str | None] = {}
        self._vaes: dict[tuple[Any, ...], Any] = {}

    def _family(self, kind: str, path: Path) -> str | None:
        key = (path, path.stat().st_mtime)
        if key not in self._families:
            try:
                self._families[key] = family_of(kind, path)
            except (OSError, ValueError, KeyError) as exc:  # not an add-on we can read: skip
                log.debug("skipping %s: %s", path, exc)
                self._families[key] = None
        return self._families[key]

    def cards(self) -> list[AddonCard]:
        found: list[AddonCard] = []
        for kind in ADDON_KINDS:
            folders_too = kind in ("controlnet", "vae")
            for entry in model_files.find(self.roots, kind, folders_too=folders_too):
                family = self._family(kind, entry.path)
                if family is None:
                    continue
                found.append(
                    AddonCard(
                        name=entry.name,
                        type=kind,  # type: ignore[arg-type]  # one of ADDON_KINDS
                        family=family,
                        size_bytes=entry.size_bytes,
                        description=f"{model_files.WORDS[kind]} from {entry.folder}",
                    )
                )
        return found

    def path(self, kind: str, name: str, field: str) -> Path:
        folders_too = kind in ("controlnet", "vae")
        return model_files.resolve(
            self.roots, kind, name, folders_too=folders_too, field=field
        ).path

    # ------------------------------------------------------------------ one job

    @contextmanager
    def attached(self, pipe: Any, request: Request, family: str) -> Iterator[None]:
        """The request's LoRAs, named embeddings and VAE on ``pipe`` for the block's duration."""
        vae, tokens = pipe.vae, []
        try:
            self._load_loras(pipe, request)
            tokens = self._load_embeddings(pipe, request, family)
            if request.vae:
                pipe.vae = self._vae(request.vae, family, vae)
            yield
        finally:
            pipe.vae = vae
            if any(pipe.get_list_adapters().values()):
                pipe.unload_lora_weights()
            if tokens:
                _forget_embeddings(pipe, tokens)

    def _load_loras(self, pipe: Any, request: Request) -> None:
        from safetensors.torch import load_file

        names, weights = [], []
        for i, lora in enumerate(request.loras):
            if lora.weight == 0:
                continue  # exactly the picture without it
            path = self.path("lora", lora.name, f"loras[{i}].name")
            adapter = f"lora{i}"
            try:
                pipe.load_lora_weights(load_file(str(path)), adapter_name=adapter)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise EngineError(
                    f"The LoRA `{lora.name}` could not be applied to this checkpoint: {exc}",
                    field=f"loras[{i}].name",
                ) from exc
            names.append(adapter)
            weights.append(lora.weight)
        if names:
            pipe.set_adapters(names, adapter_weights=weights)

    def _load_embeddings(self, pipe: Any, request: Request, family: str) -> list[str]:
        """Load the embeddings the prompts name; returns their words (tokens)."""
        from safetensors.torch import load_file

        loaded: list[str] = []
        words = set(re.findall(r"[\w.-]+", f"{request.prompt} {request.negative_prompt}"))
        for entry in model_files.find(self.roots, "embedding"):
            if entry.name not in words or self._family("embedding", entry.path) != family:
                continue
            state = load_file(str(entry.path))
            if family == "sdxl":
                pipe.load_textual_inversion(
                    state["clip_l"], token=entry.name, text_encoder=pipe.text_encoder,
                    tokenizer=pipe.tokenizer,
                )  # fmt: skip
                pipe.load_textual_inversion(
                    state["clip_g"], token=entry.name, text_encoder=pipe.text_encoder_2,
                    tokenizer=pipe.tokenizer_2,
                )  # fmt: skip
            else:
                vectors = state.get("emb_params", next(iter(state.values())))
                pipe.load_textual_inversion(vectors, token=entry.name)
            loaded.append(entry.name)
        return loaded

    def _vae(self, name: str, family: str, current: Any) -> Any:
        from diffusers import AutoencoderKL

        path = self.path("vae", name, "vae")
        key = (path, path.stat().st_mtime, current.device, current.dtype)
        if key in self._vaes:
            return self._vaes[key]
        try:
            if path.is_dir():
                vae = AutoencoderKL.from_pretrained(
                    str(path), local_files_only=True, use_safetensors=True
                )
            else:
                side = path.with_name(path.stem + ".config")
                config = side if (side / "vae").is_dir() else CONFIGS / (family or "sd1")
                vae = AutoencoderKL.from_single_file(
                    str(path), config=str(config), subfolder="vae", local_files_only=True
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise EngineError(f"The VAE `{name}` could not be loaded: {exc}", field="vae") from exc
        self._vaes = {key: vae.to(current.device, current.dtype)}  # the last one stays loaded
        return self._vaes[key]


def _forget_embeddings(pipe: Any, tokens: list[str]) -> None:
    """Take the job's embedding words out of the tokenizers and text encoders again."""
    pipe.unload_textual_inversion(tokens)
    if getattr(pipe, "text_encoder_2", None) is not None:
        pipe.unload_textual_inversion(
            tokens, tokenizer=pipe.tokenizer_2, text_encoder=pipe.text_encoder_2
        )
