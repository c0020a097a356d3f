"""Every command the documents show works as shown.

Every `brushlink ...` command in README.md and docs/*.md — in code blocks (with `$ ` prompts,
`&&` chains, `\\` continuations and `[--option VALUE]` synopses) and in inline code where it is
clearly a command — is parsed by the real command-line parser. The commands that make a picture
or a listing (generate, inpaint, style, rank, models, bundle, watch with --init, and watch run
with --once) are then run as a user runs them, in a subprocess, against a real server found
through BRUSHLINK_HOME, with small inputs (scikit-image photos under the documented file names)
and small sizes and steps. Long-running commands (serve, bench, the training and research
scripts) are only parsed; `python -m brushlink...` commands are checked by importing the module
and finding its `main`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushlink.plugin.home import join_token_argument
from brushlink.server.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SUBCOMMANDS = {
    name
    for action in build_parser()._actions
    if isinstance(action, argparse._SubParsersAction)
    for name in action.choices
}
RUNS = {"generate", "inpaint", "style", "rank", "models", "bundle", "watch"}
# Inline code that names a command without being one: `brushlink watch` (the command's name).
NAMES_ONLY = {"brushlink watch"}
# Sample values for a synopsis's placeholders that must be numbers.
PLACEHOLDERS = {"N": "2", "SECONDS": "1"}


@dataclass(frozen=True)
class Shown:
    where: str  # doc:line
    argv: tuple[str, ...]  # after `brushlink`, or the module's name for `python -m`
    module: bool = False

    @property
    def synopsis(self) -> bool:
        return any(re.fullmatch(r"[A-Z][A-Z0-9_]*", a) for a in self.argv)


def _commands_in(text: str, where: str) -> list[Shown]:
    found = []
    for part in re.split(r"&&|;", text):
        try:
            words = shlex.split(part.strip().removeprefix("$ "), comments=True)
        except ValueError:
            continue
        words = [w.strip("[]") for w in words if w not in ("&", "[", "]")]
        if words[:1] in (["python"], ["python3"]) and words[1:2] == ["-m"]:
            if len(words) > 2 and words[2].startswith("brushlink."):
                found.append(Shown(where, (words[2],), module=True))
            continue
        ours = len(words) > 1 and Path(words[0]).name == "brushlink" and words[1] in SUBCOMMANDS
        if ours and not any("..." in w or "<" in w for w in words):  # not `bench ...`
            found.append(Shown(where, tuple(words[1:])))
    return found


def documented_commands() -> list[Shown]:
    shown: list[Shown] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = list(re.finditer(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", text, re.S | re.M))
        for block in blocks:
            first = text[: block.start(1)].count("\n") + 1
            lines = block.group(1).splitlines()
            joined: list[tuple[int, str]] = []
            for n, line in enumerate(lines):
                stripped = line.strip()
                continues = joined and joined[-1][1].endswith("\\")
                if continues or (joined and stripped.startswith("[") and line[:1].isspace()):
                    joined[-1] = (joined[-1][0], joined[-1][1].rstrip("\\") + " " + stripped)
                else:
                    joined.append((first + n, stripped))
            for line_no, line in joined:
                where = f"{doc.name}:{line_no}"
                shown += _commands_in(line, where)
                comment = line.partition(" # ")[2]  # "(brushlink watch --init ~/inbox for ...)"
                for inline in re.findall(r"brushlink [a-z][^`()]*?(?= for |\)|`|$)", comment):
                    shown += _commands_in(inline, where)
        spans = [block.span() for block in blocks]
        for match in re.finditer(r"`((?:python3? -m )?brushlink[ .][^`]*)`", text):
            if any(start <= match.start() < end for start, end in spans):
                continue
            line_no = text[: match.start()].count("\n") + 1
            if match.group(1) not in NAMES_ONLY:
                shown += _commands_in(match.group(1), f"{doc.name}:{line_no}")
    return shown


COMMANDS = documented_commands()
CLI = [c for c in COMMANDS if not c.module]
MODULES = sorted({c.argv[0] for c in COMMANDS if c.module})
RUNNABLE_ARGV: set[tuple[str, ...]] = set()
RUNNABLE: list[Shown] = []  # each distinct command once, under the first place showing it
for _shown in CLI:
    if _shown.argv[0] in RUNS and not _shown.synopsis and _shown.argv not in RUNNABLE_ARGV:
        RUNNABLE.append(_shown)
        RUNNABLE_ARGV.add(_shown.argv)


def test_the_documents_show_every_subcommand() -> None:
    """The extraction finds what the documents hold (a guard against a regex gone blind)."""
    assert {c.argv[0] for c in CLI} == SUBCOMMANDS
    assert len(CLI) >= 30 and len(RUNNABLE) >= 15
    assert "brushlink.server.training.train" in MODULES


@pytest.mark.parametrize("shown", CLI, ids=lambda c: f"{c.where} {' '.join(c.argv)}")
def test_every_documented_command_parses(shown: Shown) -> None:
    argv = [PLACEHOLDERS.get(a, a) for a in shown.argv]
    try:
        args = build_parser().parse_args(join_token_argument(argv))
    except SystemExit as exc:  # argparse has printed why
        pytest.fail(f"{shown.where}: `brushlink {' '.join(shown.argv)}` does not parse ({exc})")
    assert callable(args.func)
    if args.command == "bench":  # the module behind the name has its main
        from brushlink.server.cli.bench import BENCHES

        assert callable(importlib.import_module(BENCHES[args.name]).main)


@pytest.mark.parametrize("module", MODULES)
def test_every_documented_module_has_a_main(module: str) -> None:
    imported = importlib.import_module(module)
    if hasattr(imported, "__path__"):  # `python -m PACKAGE` runs PACKAGE.__main__
        imported = importlib.import_module(f"{module}.__main__")
    assert callable(getattr(imported, "main", None)), module


# --------------------------------------------------------------------------- running them


def _save(image: np.ndarray, path: Path, width: int = 96) -> Path:
    height = round(image.shape[0] * width / image.shape[1])
    Image.fromarray(image[..., :3]).resize((width, height)).save(path)
    return path


# Models the guided-generation examples name, stood in for by tiny ones in the published layouts.
GUIDED_NAMES = {
    "checkpoints/tiny.safetensors": "checkpoints/dreamshaper_8.safetensors",
    "checkpoints/tiny.config": "checkpoints/dreamshaper_8.config",
    "loras/style.safetensors": "loras/pixel-art.safetensors",
    "loras/grain.safetensors": "loras/film-grain.safetensors",
    "controlnet/edges.safetensors": "controlnet/canny-sd15.safetensors",
    "controlnet/edges.config": "controlnet/canny-sd15.config",
    "controlnet/depth": "controlnet/depth-sd15",
    "vae/other.safetensors": "vae/vae-ft-mse.safetensors",
    "vae/other.config": "vae/vae-ft-mse.config",
}
GUIDED_FLAGS = ("--lora", "--control", "--vae", "--model")


@pytest.fixture(scope="module")
def guided_server(tmp_path_factory: pytest.TempPathFactory):
    """A server whose models folder holds the checkpoint, LoRAs, ControlNets and VAE the
    guided-generation examples name (tiny stand-ins, loaded through the real loaders)."""
    from conftest import ServerProcess
    from fixtures.guided_models import comfy_models

    models = comfy_models(tmp_path_factory.mktemp("docs-models") / "models")
    for old, new in GUIDED_NAMES.items():
        (models / old).rename(models / new)
    for extra in ("checkpoints/xl.safetensors", "checkpoints/xl.config"):
        path = models / extra
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    proc = ServerProcess(home=tmp_path_factory.mktemp("docs-home"), args=["--models", str(models)])
    yield proc.start()
    proc.stop()


def _guided(argv: list[str]) -> bool:
    """Whether a command needs a checkpoint (it names add-ons, or a model the bare install
    lacks)."""
    named = argv[argv.index("--model") + 1] if "--model" in argv else None
    return any(f in argv for f in GUIDED_FLAGS[:3]) or named not in (
        None,
        "builtin",
        "fill",
        "filters",
    )


@pytest.fixture
def desk(
    request, tmp_path: Path, server, coffee, astronaut, chelsea
) -> tuple[Path, dict[str, str]]:
    """A working folder holding the documented inputs, and an environment whose
    BRUSHLINK_HOME leads to the test server (the one with checkpoints for guided examples) and
    whose HOME is the folder (for `~/...`)."""
    shown = request.node.callspec.params["shown"]
    if _guided(list(shown.argv)):
        server = request.getfixturevalue("guided_server")
    home = tmp_path / "brushlink-home"
    home.mkdir()
    (home / "config.toml").write_text(f"[server]\nport = {server.port}\n")
    (home / "token").write_text(server.token)
    photo = _save(coffee, tmp_path / "photo.png")
    with Image.open(photo) as image:
        width, height = image.size
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : height // 2, width // 3 : width // 2] = 255  # a patch of the cup
    Image.fromarray(mask).save(tmp_path / "mask.png")
    _save(chelsea, tmp_path / "sunset.jpg")
    for name, image in zip("abc", (coffee, astronaut, chelsea), strict=True):
        _save(image, tmp_path / f"{name}.png", 64)
    _save(astronaut, tmp_path / "sketch.png", 64)  # control pictures
    _save(chelsea, tmp_path / "depth.png", 96)
    env = {**os.environ, "BRUSHLINK_HOME": str(home), "HOME": str(tmp_path)}
    env.pop("XDG_DATA_HOME", None)
    return tmp_path, env


def _small(argv: list[str]) -> list[str]:
    """Small sizes and few steps for a generate; a watch that returns once the inbox is done."""
    if argv[0] == "generate":
        if "--size" in argv:
            argv[argv.index("--size") + 1] = "64x64"
        else:
            argv += ["--size", "64x64"]
        argv += ["--steps", "2"]
    if argv[0] == "watch" and "--init" not in argv:
        argv += ["--once", "--settle", "0.3", "--server-wait", "30"]
    return argv


def _brushlink(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "brushlink.server.cli.main", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("shown", RUNNABLE, ids=lambda c: f"{c.where} {' '.join(c.argv)}")
def test_documented_commands_make_their_picture_or_listing(shown: Shown, desk) -> None:
    cwd, env = desk
    argv = _small(list(shown.argv))
    inbox = None
    if argv[0] == "watch" and "--init" not in argv:
        # the documented way to start: --init, then a photo dropped into a recipe folder
        inbox = _here(argv[1], cwd)
        assert _brushlink(["watch", "--init", str(inbox)], cwd, env).returncode == 0
        (inbox / "watercolor" / "p.png").write_bytes((cwd / "photo.png").read_bytes())
    done = _brushlink(argv, cwd, env)
    assert done.returncode == 0, f"{shown.where}: {' '.join(argv)}\n{done.stdout}{done.stderr}"
    assert "in-process" not in done.stderr  # it used the running server
    _check_made(argv, cwd, done.stdout, inbox)


def _check_made(argv: list[str], cwd: Path, stdout: str, inbox: Path | None) -> None:
    command = argv[0]
    if command in ("generate", "inpaint", "style"):
        out = cwd / argv[argv.index("-o") + 1]
        with Image.open(out) as image:
            image.load()
            if command == "generate":
                assert image.size == (64, 64)
        if "--keep" not in argv and "--candidates" in argv:
            assert (cwd / f"{out.stem}-1.png").is_file()
    elif command == "rank":
        ranked = [line.split()[-1] for line in stdout.splitlines()]
        assert sorted(ranked) == sorted(argv[2:])  # every image, with its score
    elif command == "models":
        if "--json" in argv and "--workers" in argv:  # the running server's workers
            workers = json.loads(stdout)
            assert workers and all({"name", "device", "models_warm"} <= set(w) for w in workers)
        elif "--json" in argv:
            assert {"builtin", "fill", "filters"} <= {m["name"] for m in json.loads(stdout)}
        else:
            names = {line.split()[0] for line in stdout.splitlines()[1:] if line[:1].strip()}
            assert {"builtin", "fill", "filters"} <= names
            assert "no server is running" not in stdout  # it listed the server's workers
    elif command == "bundle":
        (path,) = stdout.split()
        folder = argv[argv.index("-o") + 1] if "-o" in argv else "dist"  # its default
        assert Path(cwd, path).parent == cwd / folder.rstrip("/")
        assert zipfile.ZipFile(Path(cwd, path)).testzip() is None
    elif "--init" in argv:
        folder = _here(argv[-1], cwd)
        assert {"watercolor", "sketch", "cleanup", "textures", "rank"} <= {
            p.parent.name for p in folder.glob("*/recipe.toml")
        }
    else:
        assert inbox is not None
        outbox = _here(argv[argv.index("--out") + 1], cwd) if "--out" in argv else None
        outbox = outbox or inbox.parent / "outbox"
        assert sorted(p.name for p in (outbox / "watercolor").iterdir()) == ["p.json", "p.png"]
        assert (inbox / "watercolor" / "done" / "p.png").is_file()


def _here(text: str, cwd: Path) -> Path:
    """A documented path as the command saw it, with HOME set to the working folder."""
    return cwd / text[2:] if text.startswith("~/") else cwd / text
