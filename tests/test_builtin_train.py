"""The training script at toy scale: it writes loadable weights and its record, a run is
reproducible from its seed, and ``--reuse-clip`` and ``--from`` give the same weights as a full
run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from brushlink.server.engines.builtin import clip_model, unet
from brushlink.server.training import data, train, train_batches, train_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--images", "48", "--clip-steps", "2", "--clip-batch", "16", "--sharpen-steps", "2"]
TINY += ["--unet-steps", "2", "--unet-batch", "4", "--refine-steps", "2", "--threads", "1"]


def _run(out: Path, *extra: str) -> dict[str, torch.Tensor]:
    assert train.main([*TINY, "--out", str(out), *extra]) == 0
    return load_file(str(out / "unet.safetensors"))


def test_a_run_writes_loadable_weights_and_its_settings(tmp_path: Path) -> None:
    _run(tmp_path)
    clip = clip_model.BuiltinClip(clip_model.load_clip("cpu", tmp_path / "clip.safetensors"))
    generator = unet.load_unet("cpu", tmp_path / "unet.safetensors")
    assert clip.embed_text(["red bricks"]).shape == (1, clip_model.CLIP_CONFIG["embed_dim"])
    assert sum(p.numel() for p in generator.parameters()) > 0
    record = json.loads((tmp_path / "training.json").read_text())
    assert record["images"] == 48 and record["unet_steps"] == 2 and record["threads"] == 1
    assert record["clip_device"] == record["unet_device"] == record["refine_device"] == "cpu"
    assert not (tmp_path / "unet.partial").exists()  # the checkpoint is gone once done


def test_the_same_seed_gives_the_same_weights_and_reuse_clip_the_same_generator(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path / "a")
    again = _run(tmp_path / "b")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    reused = _run(tmp_path / "a", "--reuse-clip")
    assert all(torch.equal(first[k], reused[k]) for k in first)
    other_seed = _run(tmp_path / "c", "--seed", "7")
    assert not all(torch.equal(first[k], other_seed[k]) for k in first)


def test_extending_an_earlier_run_gives_the_full_runs_weights(tmp_path: Path) -> None:
    full = _run(tmp_path / "full")
    # an earlier run without steps 2b and 4, then extended with them
    early = tmp_path / "early"
    stage_1 = _run(early, "--sharpen-steps", "0", "--refine-steps", "0")
    # step 3 writes the plain generator; step 4 gives it the inpainting inputs and trains on
    assert stage_1["conv_in.weight"].shape[1] == unet.CHANNELS
    assert full["conv_in.weight"].shape[1] == unet.CHANNELS + unet.CONDITION_CHANNELS
    assert not torch.equal(full["conv_in.weight"][:, : unet.CHANNELS], stage_1["conv_in.weight"])
    extended = _run(tmp_path / "extended", "--from", str(early))
    assert all(torch.equal(full[k], extended[k]) for k in full)

    # --clip-only runs step 2b and stops: the full run's CLIP, no generator
    clip_only = ["--out", str(tmp_path / "clip"), "--from", str(early), "--clip-only"]
    assert train.main([*TINY, *clip_only]) == 0
    assert not (tmp_path / "clip" / "unet.safetensors").exists()

    names = ("full", "early", "extended", "clip")
    clips = {name: load_file(str(tmp_path / name / "clip.safetensors")) for name in names}
    for other in ("extended", "clip"):
        assert clips["full"].keys() == clips[other].keys()
        assert all(torch.equal(v, clips[other][k]) for k, v in clips["full"].items())
    # step 2b trains the image tower only: the text tower the generator reads is untouched
    moved = {k for k, v in clips["full"].items() if not torch.equal(v, clips["early"][k])}
    assert moved and all(k.startswith("visual.") for k in moved)
    record = json.loads((tmp_path / "extended" / "training.json").read_text())
    assert record["refine_steps"] == 2 and record["sharpen_steps"] == 2
    assert record["unet_seconds"] is not None and record["refine_seconds"] is not None


def test_refining_a_refined_generator_continues_it_and_keeps_the_earlier_sittings(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path / "first")
    second = _run(tmp_path / "second", "--from", str(tmp_path / "first"), "--refine-lr", "3e-4")
    assert not torch.equal(first["conv_in.weight"], second["conv_in.weight"])
    first_record = json.loads((tmp_path / "first" / "training.json").read_text())
    record = json.loads((tmp_path / "second" / "training.json").read_text())
    assert "refined_before" not in first_record
    assert record["refine_lr"] == 3e-4
    assert record["refined_before"] == [
        {k: first_record[k] for k in train.REFINE_RECORD}  # steps, batch, lr, seconds, device
    ]
    third = _run(tmp_path / "third", "--from", str(tmp_path / "second"))
    record = json.loads((tmp_path / "third" / "training.json").read_text())
    assert [s["refine_lr"] for s in record["refined_before"]] == [1e-3, 3e-4]
    assert not torch.equal(second["conv_in.weight"], third["conv_in.weight"])
    # a continued sitting is as reproducible as a full run
    repeat = _run(tmp_path / "repeat", "--from", str(tmp_path / "first"), "--refine-lr", "3e-4")
    assert all(torch.equal(second[k], repeat[k]) for k in second)
    # the second sitting drew its own batches: the seed after the first sitting's, not the same
    images, specs = data.make_dataset(48, train.DEFAULTS["seed"])
    clip = clip_model.load_clip("cpu", tmp_path / "second" / "clip.safetensors")
    init = unet.load_unet("cpu", tmp_path / "first" / "unet.safetensors")
    for shift, same in ((1, False), (2, True)):
        seed = train.DEFAULTS["seed"] + shift
        model = train_generator.train_unet(
            images, specs, clip, 2, train.DEFAULTS["refine_batch"], seed, init=init, peak_lr=3e-4
        )
        unet.save_unet(model, tmp_path / f"seed{shift}.safetensors")
        weights = load_file(str(tmp_path / f"seed{shift}.safetensors"))
        assert all(torch.equal(second[k], weights[k]) for k in second) is same


def test_a_sitting_of_step_4_can_deepen_the_generator_and_later_ones_keep_its_depth(
    tmp_path: Path,
) -> None:
    _run(tmp_path / "first")
    deep = ["--layers-per-block", "2", "--transformer-layers", "2"]
    _run(tmp_path / "deep", "--from", str(tmp_path / "first"), *deep)
    assert unet.depth(unet.load_unet("cpu", tmp_path / "deep" / "unet.safetensors")) == (2, 2)
    record = json.loads((tmp_path / "deep" / "training.json").read_text())
    assert (record["layers_per_block"], record["transformer_layers"]) == (2, 2)
    assert [(s["layers_per_block"], s["transformer_layers"]) for s in record["refined_before"]] == [
        (1, 1)
    ]
    # the same command gives the same deepened weights; a later sitting keeps the depth
    first = load_file(str(tmp_path / "deep" / "unet.safetensors"))
    again = _run(tmp_path / "again", "--from", str(tmp_path / "first"), *deep)
    assert all(torch.equal(first[k], again[k]) for k in first)
    _run(tmp_path / "later", "--from", str(tmp_path / "deep"))
    assert unet.depth(unet.load_unet("cpu", tmp_path / "later" / "unet.safetensors")) == (2, 2)


@pytest.mark.parametrize(
    "extra",
    [["--layers-per-block", "2", "--refine-steps", "0"], ["--transformer-layers", "0"]],
)
def test_deepening_without_step_4_or_to_no_depth_is_refused(
    tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train.main([*TINY, "--out", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert "--layers-per-block and --transformer-layers" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything was rendered or written


def test_the_generator_is_checkpointed_while_it_trains() -> None:
    images, specs = data.make_dataset(16, seed=3)
    clip = clip_model.build_clip().eval()
    saved: list[float] = []
    train_generator.train_unet(
        images,
        specs,
        clip,
        steps=4,
        batch=2,
        seed=3,
        checkpoint=lambda model: saved.append(float(next(model.parameters()).sum())),
        checkpoint_every=2,
    )
    assert len(saved) == 2 and saved[0] != saved[1]  # after steps 2 and 4, as they trained


def test_batches_are_the_data_sets_images_each_rolled_by_its_own_offset() -> None:
    images, specs = data.make_dataset(40, seed=5)
    pixels, captions, keys = train_batches.draw_batch(images, specs, 12, random.Random(9))
    # the same draws, one image at a time: the index, then each image's shift
    rng = random.Random(9)
    idx = [rng.randrange(len(specs)) for _ in range(12)]
    shifts = [(rng.randrange(data.SIZE), rng.randrange(data.SIZE)) for _ in idx]
    want = np.stack([np.roll(images[i], s, (0, 1)) for i, s in zip(idx, shifts, strict=True)])
    assert torch.equal(pixels, train_batches.to_tensor(want))
    assert len(set(shifts)) > 1  # offsets differ between images
    assert keys == [(specs[i].colours, specs[i].pattern) for i in idx]
    assert all(data.colour_phrase(k[0]) in c for k, c in zip(keys, captions, strict=True))
