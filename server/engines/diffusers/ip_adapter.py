"""IP-Adapter files for style from a reference image: where they are looked for, and a refusal
that says exactly what is missing when they are not there."""

from __future__ import annotations

from pathlib import Path

from brushlink.plugin.errors import Unsupported

# IP-Adapter files per family, looked for in <models root>/ipadapter/.
IP_ADAPTER_WEIGHTS = {
    "sd1": "ip-adapter_sd15.safetensors",
    "sdxl": "ip-adapter_sdxl_vit-h.safetensors",
}
IP_ADAPTER_ENCODER = "image_encoder"  # CLIPVisionModelWithProjection folder (ViT-H)


def _found(roots: list[Path], family: str) -> Path | None:
    weight = IP_ADAPTER_WEIGHTS.get(family)
    if weight is None:
        return None
    for folder in (root / "ipadapter" for root in roots):
        encoder = folder / IP_ADAPTER_ENCODER
        there = (folder / weight).is_file() and (encoder / "config.json").is_file()
        if there and any(encoder.glob("*.safetensors")):
            return folder
    return None


def adapter_files(roots: list[Path], family: str) -> tuple[Path, str]:
    """The IP-Adapter folder and weight file for ``family``, or a clear refusal."""
    weight = IP_ADAPTER_WEIGHTS.get(family)
    if weight is None:
        raise Unsupported(
            "Style from a reference image needs IP-Adapter weights, and there are none for "
            "Stable Diffusion 2.x; use an SD 1.x or SDXL checkpoint.",
            field="reference",
        )
    folder = _found(roots, family)
    if folder is None:
        where = roots[0] / "ipadapter" if roots else Path("models/ipadapter")
        raise Unsupported(
            f"Style from a reference image needs the IP-Adapter weights `{weight}` and the image "
            f"encoder folder `{IP_ADAPTER_ENCODER}/` (config.json + model.safetensors) in "
            f"`{where}`; they are not installed. Without a reference, style uses the prompt.",
            field="reference",
        )
    return folder, weight
