"""Load Stable Diffusion weights from local files only; never a hub call.

Two layouts:

* a diffusers folder (``model_index.json`` + one folder per component) loads with
  ``local_files_only=True`` and ``use_safetensors=True`` (pickled ``.bin`` weights are refused);
* a single original-layout ``.safetensors`` file loads component by component with diffusers'
  single-file converters, taking configs from ``configs/<family>/`` that the project ships and
  the CLIP tokenizer from ``configs/clip-tokenizer/``. A ``<stem>.config/`` folder next to the
  file may override the config of any component (for checkpoints not shaped like the family's
  reference model).

The family is read from the weights' key names, never from the file name.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brushlink.plugin.errors import EngineError, Unsupported

from ..kit.model_files import PICKLE_SUFFIXES

# diffusers, transformers and torch are imported inside the loading functions: listing models
# only reads file headers, so a server starts without paying for those imports.


class _NoEmptyFp32Warning(logging.Filter):
    """diffusers warns about "modules that should be kept in float32" on every dtype cast, even
    when there are none (SDXL pipelines cast their VAE on every call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_NoEmptyFp32Warning())

CONFIGS = Path(__file__).parent / "configs"

# Keys that tell the families apart in the original (CompVis / Stability) layout.
_SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
_SD2_TEXT = "cond_stage_model.model.token_embedding.weight"
_SDXL_TEXT2 = "conditioner.embedders.1.model.token_embedding.weight"
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"


@dataclass(frozen=True)
class Detected:
    """What a checkpoint is, read from its weights without loading them."""

    family: str  # sd1 | sd2 | sdxl
    inpaint: bool  # 9-channel UNet (dedicated inpainting checkpoint)
    native_size: int
    v_prediction: bool = False  # SD 2.x 768-v; SD 2.x base and inpainting predict noise


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise Unsupported(
            f"`{path.name}` is a pickled checkpoint ({path.suffix}); pickles can run code when "
            "loaded, so brushlink only loads `.safetensors` files. Convert it to .safetensors "
            "first.",
            field="model",
        )


MAX_HEADER = 100 * 2**20


def parse_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file, read without its tensors (OSError, ValueError)."""
    with open(path, "rb") as f:
        start = f.read(8)
        if len(start) < 8:
            raise ValueError("shorter than a header")
        (length,) = struct.unpack("<Q", start)
        if not 2 <= length <= MAX_HEADER:
            raise ValueError(f"header length {length}")
        header = json.loads(f.read(length))
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file: tensor name -> {dtype, shape, data_offsets}."""
    try:
        header = parse_header(path)
    except (OSError, ValueError) as exc:
        raise Unsupported(
            f"`{path.name}` is not a readable .safetensors file ({exc}).", field="model"
        ) from exc
    return header


def detect_single_file(path: Path) -> Detected:
    """Family and inpainting-ness of a single-file checkpoint, from its header only."""
    refuse_pickle(path)
    header = read_header(path)
    keys = set(header)
    in_shape = header[_UNET_IN].get("shape") if _UNET_IN in keys else None
    if in_shape is None:
        raise Unsupported(
            f"`{path.name}` holds no Stable Diffusion UNet (no `{_UNET_IN}`); it may be a LoRA, "
            "a VAE or another kind of model.",
            field="model",
        )
    if _SDXL_TEXT2 in keys:
        family = "sdxl"
    elif _SD2_TEXT in keys:
        family = "sd2"
    elif _SD1_TEXT in keys:
        family = "sd1"
    else:
        raise Unsupported(
            f"`{path.name}` is not an SD 1.x, SD 2.x or SDXL checkpoint (no text encoder found).",
            field="model",
        )
    inpaint = in_shape[1] == 9
    v_prediction = family == "sd2" and not inpaint and _sd2_predicts_v(path, header)
    sample_size = _sd2_sample_size(path, v_prediction) if family == "sd2" else None
    return Detected(family, inpaint, _native_size(path, family, sample_size), v_prediction)


# SD 2.x ships as 768 px v-prediction and 512 px noise-prediction models with the same shapes.
# The v models' last attention block has much larger norm biases; ComfyUI tells them apart the
# same way (standard deviation above 0.09).
_SD2_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def _sd2_predicts_v(path: Path, header: dict[str, Any]) -> bool:
    import numpy as np

    entry = header.get(_SD2_PROBE)
    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
        return True  # the shipped SD 2.x config is 768-v
    start, end = entry["data_offsets"]
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + length + start)
        values = np.frombuffer(f.read(end - start), dtype=_DTYPES[entry["dtype"]])
    return float(values.astype(np.float64).std()) > 0.09


def _sd2_sample_size(path: Path, v_prediction: bool) -> int | None:
    """64 latents (512 px) for SD 2.x noise-prediction models, unless a sidecar says otherwise."""
    if v_prediction or _config_dir(path, "sd2", "unet") != CONFIGS / "sd2":
        return None
    return 64


def _native_size(path: Path, family: str, sample_size: int | None = None) -> int:
    """The training resolution: UNet sample size times the VAE's downscale factor."""
    unet_cfg = json.loads((_config_dir(path, family, "unet") / "unet" / "config.json").read_text())
    vae_cfg = json.loads((_config_dir(path, family, "vae") / "vae" / "config.json").read_text())
    size = sample_size or int(unet_cfg["sample_size"])
    return size * 2 ** (len(vae_cfg["block_out_channels"]) - 1)


def detect_folder(folder: Path) -> Detected:
    """Family and inpainting-ness of a diffusers folder, from its config files."""
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    index = json.loads((folder / "model_index.json").read_text())
    if "text_encoder_2" in index or unet_cfg.get("addition_embed_type") == "text_time":
        family = "sdxl"
    elif unet_cfg.get("cross_attention_dim") == 1024:
        family = "sd2"
    else:
        family = "sd1"
    vae_cfg_path = folder / "vae" / "config.json"
    vae_factor = 8
    if vae_cfg_path.is_file():
        vae_factor = 2 ** (len(json.loads(vae_cfg_path.read_text())["block_out_channels"]) - 1)
    native = int(unet_cfg.get("sample_size", 64)) * vae_factor
    return Detected(family, unet_cfg.get("in_channels") == 9, native)


def _quiet_diffusers() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # loading bars would only clutter the server log


def load_folder(folder: Path, dtype: Any) -> Any:
    """A diffusers folder, offline, safetensors only."""
    from diffusers import DiffusionPipeline

    _quiet_diffusers()
    for weights in folder.rglob("*"):
        if (
            weights.suffix.lower() in PICKLE_SUFFIXES
            and not weights.with_suffix(".safetensors").exists()
        ):
            refuse_pickle(weights)
    extra: dict[str, Any] = {}
    if "safety_checker" in json.loads((folder / "model_index.json").read_text()):
        extra = {"safety_checker": None, "requires_safety_checker": False}  # no NSFW filter model
    try:
        return DiffusionPipeline.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, torch_dtype=dtype, **extra
        )
    except (OSError, ValueError) as exc:
        raise EngineError(f"Could not load the diffusers folder `{folder.name}`: {exc}") from exc


def _config_dir(path: Path, family: str, component: str) -> Path:
    """The sidecar ``<stem>.config/<component>`` when present, else the shipped family config."""
    side = path.with_name(path.stem + ".config")
    if (side / component).is_dir():
        return side
    return CONFIGS / family


def load_single_file(path: Path, dtype: Any) -> Any:
    """One original-layout ``.safetensors`` checkpoint, with the configs the project ships."""
    from safetensors.torch import load_file

    _quiet_diffusers()
    found = detect_single_file(path)
    try:
        state = load_file(str(path))
        return _assemble(path, found, state, dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise EngineError(f"Could not load the checkpoint `{path.name}`: {exc}") from exc


def _assemble(path: Path, found: Detected, state: dict[str, Any], dtype: Any) -> Any:
    from diffusers import (
        AutoencoderKL,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    family = found.family
    common: dict[str, Any] = {"local_files_only": True, "torch_dtype": dtype}
    unet_extra: dict[str, Any] = {"in_channels": 9 if found.inpaint else 4}
    if family == "sd2" and (size := _sd2_sample_size(path, found.v_prediction)):
        unet_extra["sample_size"] = size
    unet = UNet2DConditionModel.from_single_file(
        state,
        config=str(_config_dir(path, family, "unet")),
        subfolder="unet",
        **unet_extra,
        **common,
    )
    vae = AutoencoderKL.from_single_file(
        state, config=str(_config_dir(path, family, "vae")), subfolder="vae", **common
    )
    text_encoder = _text_encoder(CLIPTextModel, state, path, family, "text_encoder", dtype)
    scheduler_dir = _config_dir(path, family, "scheduler")
    scheduler_cfg = json.loads((scheduler_dir / "scheduler" / "scheduler_config.json").read_text())
    if family == "sd2" and scheduler_dir == CONFIGS / "sd2":
        scheduler_cfg["prediction_type"] = "v_prediction" if found.v_prediction else "epsilon"
    scheduler = _scheduler_class(scheduler_cfg["_class_name"]).from_config(scheduler_cfg)
    if family == "sdxl":
        text_encoder_2 = _text_encoder(
            CLIPTextModelWithProjection, state, path, family, "text_encoder_2", dtype
        )
        return StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=clip_tokenizer("<|endoftext|>"),
            tokenizer_2=clip_tokenizer("!"),
            unet=unet,
            scheduler=scheduler,
        )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer("<|endoftext|>" if family == "sd1" else "!"),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _text_encoder(
    cls: type, state: dict[str, Any], path: Path, family: str, name: str, dtype: Any
) -> Any:
    import torch
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    model = create_diffusers_clip_model_from_ldm(
        cls,
        state,
        subfolder=name,
        config=str(_config_dir(path, family, name)),
        torch_dtype=dtype,
        local_files_only=True,
    )
    # diffusers loads CLIP with strict=False; a silently random text encoder would make every
    # prompt meaningless, so check that the checkpoint's position embedding really arrived.
    key = _POSITION_KEYS[(family, name)]
    embed = _embeddings(model).position_embedding.weight
    if key not in state or not torch.equal(embed.detach().cpu().to(state[key].dtype), state[key]):
        raise EngineError(f"The text encoder `{name}` of `{path.name}` did not load.")
    return model


_POSITION_KEYS = {
    ("sd1", "text_encoder"): _SD1_TEXT,
    ("sd2", "text_encoder"): "cond_stage_model.model.positional_embedding",
    ("sdxl", "text_encoder"): (
        "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"
    ),
    ("sdxl", "text_encoder_2"): "conditioner.embedders.1.model.positional_embedding",
}


def _embeddings(model: Any) -> Any:
    text_model = getattr(model, "text_model", model)
    return text_model.embeddings


def _scheduler_class(name: str) -> Any:
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None:
        raise EngineError(f"Unknown scheduler class `{name}` in the shipped configs.")
    return cls


def clip_tokenizer(pad_token: str) -> Any:
    """The CLIP tokenizer every SD family uses, from the vocabulary the project ships."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(
        str(CONFIGS / "clip-tokenizer"), local_files_only=True, pad_token=pad_token
    )


def load_pipeline(path: Path, dtype: Any = None) -> Any:
    """Load a checkpoint (file or diffusers folder) into a txt2img pipeline on the CPU.

    ``dtype`` is a torch dtype or its name ("float16"); float32 when None.
    """
    import torch

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or torch.float32)
    if path.is_dir():
        return load_folder(path, dtype)
    refuse_pickle(path)
    return load_single_file(path, dtype)
