"""The model folders artists already have: ComfyUI's and A1111's layouts, read as they are.

A model root is ``BRUSHLINK_HOME/models`` or any ``--models DIR`` (a ComfyUI or A1111/Forge
``models/`` folder works as it is). Each kind of file lives in one of its sub-folders:

    kind         ComfyUI            A1111 / Forge              files
    checkpoint   checkpoints/       Stable-diffusion/          .safetensors or diffusers folders
    lora         loras/             Lora/, LyCORIS/            .safetensors
    controlnet   controlnet/        ControlNet/                .safetensors or diffusers folders
    vae          vae/               VAE/                       .safetensors or diffusers folders
    upscaler     upscale_models/    ESRGAN/, RealESRGAN/       .safetensors
    embedding    embeddings/        embeddings/                .safetensors
    clip         clip/                                         .safetensors + .json
    ipadapter    ipadapter/                                    .safetensors + image_encoder/

A file is named by its file name without the extension (a folder by its name), and names
resolve strictly inside these folders: no path separators, no ``..``, no link that leads out.
Pickled weights (.ckpt, .pt, .pth, .bin) are never loaded: ``resolve`` says so by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from brushlink.plugin.errors import UnknownModel, Unsupported

FOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("checkpoints", "Stable-diffusion"),
    "lora": ("loras", "Lora", "LyCORIS"),
    "controlnet": ("controlnet", "ControlNet"),
    "vae": ("vae", "VAE"),
    "upscaler": ("upscale_models", "ESRGAN", "RealESRGAN"),
    "embedding": ("embeddings",),
    "clip": ("clip",),
    "ipadapter": ("ipadapter",),
}
# What each kind of file is called in messages.
WORDS = {
    "checkpoint": "checkpoint",
    "lora": "LoRA",
    "controlnet": "ControlNet",
    "vae": "VAE",
    "upscaler": "upscaler",
    "embedding": "embedding",
    "clip": "CLIP",
    "ipadapter": "IP-Adapter",
}
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
_BAD_NAME = re.compile(r"[/\\\x00:]")


@dataclass(frozen=True)
class ModelFile:
    kind: str
    name: str
    path: Path  # a .safetensors file or a diffusers folder
    folder: Path  # the model folder it was found in

    @property
    def size_bytes(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*.safetensors") if p.is_file())
        return self.path.stat().st_size


def folders(roots: list[Path], kind: str) -> list[Path]:
    """The existing folders that hold ``kind`` files, in root order (ComfyUI's name first)."""
    found: list[Path] = []
    for root in roots:
        for name in FOLDERS[kind]:
            candidate = Path(root) / name
            if candidate.is_dir() and candidate not in found:
                found.append(candidate)
    return found


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, links followed, lies inside ``folder``."""
    try:
        path.resolve(strict=True).relative_to(folder.resolve(strict=True))
    except (OSError, ValueError):
        return False
    return True


def check_name(name: str, field: str = "model") -> None:
    """Refuse names that could point outside a model folder."""
    if not name or name.startswith(".") or ".." in name or _BAD_NAME.search(name):
        raise UnknownModel(
            f"`{name[:80]}` is not a valid model name: a name is a file or folder name inside "
            "a model folder, without slashes or `..`.",
            field=field,
        )


def _entry(kind: str, folder: Path, path: Path, folders_too: bool) -> ModelFile | None:
    if path.name.startswith(".") or not inside(path, folder):
        return None
    if path.is_dir():
        if not folders_too or path.name.endswith(".config"):
            return None
        if not (path / "config.json").is_file() and not (path / "model_index.json").is_file():
            return None
        return ModelFile(kind, path.name, path, folder)
    if path.suffix.lower() == ".safetensors":
        return ModelFile(kind, path.stem, path, folder)
    return None


def find(roots: list[Path], kind: str, *, folders_too: bool = False) -> list[ModelFile]:
    """Every ``kind`` file in the roots' folders, first of a name wins (cheap: no reading)."""
    seen: dict[str, ModelFile] = {}
    for folder in folders(roots, kind):
        for path in sorted(folder.iterdir()):
            entry = _entry(kind, folder, path, folders_too)
            if entry is not None and entry.name not in seen:
                seen[entry.name] = entry
    return list(seen.values())


def resolve(
    roots: list[Path], kind: str, name: str, *, folders_too: bool = False, field: str = "model"
) -> ModelFile:
    """The ``kind`` file called ``name``, or a clear error saying why there is none."""
    check_name(name, field)
    for folder in folders(roots, kind):
        for candidate in (folder / name, folder / f"{name}.safetensors"):
            if not (candidate.exists() or candidate.is_symlink()):
                continue
            if not inside(candidate, folder):
                raise Unsupported(
                    f"`{name}` is a link that leads outside the model folder `{folder}`; "
                    "brushlink only loads models that live inside its model folders "
                    "(add the other folder with `--models`).",
                    field=field,
                )
            entry = _entry(kind, folder, candidate, folders_too)
            if entry is not None:
                return entry
        for suffix in PICKLE_SUFFIXES:
            pickled = folder / f"{name}{suffix}"
            if pickled.exists():
                raise Unsupported(
                    f"`{pickled.name}` is a pickled file; pickles can run code when loaded, so "
                    "brushlink only loads `.safetensors` files. Convert it to .safetensors first.",
                    field=field,
                )
    raise UnknownModel(f"There is no {WORDS[kind]} called `{name[:80]}`.", field=field)
