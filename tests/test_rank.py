"""CLIP ranking: a user's open_clip weights from models/clip, the rank engine, and candidates of
the diffusers engine ranked best first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.engine_jobs import engine_job
from fixtures.tiny_sd import (
    TINY_CLIP,
    build_tiny_pipeline,
    save_single_file,
    save_tiny_clip,
)

from brushlink.plugin.errors import InvalidField, Unsupported
from brushlink.plugin.request import Request
from brushlink.server.engines.base import JobContext
from brushlink.server.engines.diffusers.engine import DiffusersEngine
from brushlink.server.engines.rank.engine import (
    BUILTIN_NAME,
    RankEngine,
    _builtin_loader,
    rank_scores,
)
from brushlink.server.engines.rank.open_clip_ranker import ClipRanker, find_clips

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_tiny_clip(root / "clip", "tiny-clip")
    return root


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    from skimage import data

    images = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    return [np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]) for im in images]


def run_rank(engine: RankEngine, model: str, prompt: str, inputs: list[np.ndarray]) -> dict:
    job = engine_job(engine, Request(kind="rank", prompt=prompt, model=model), inputs=inputs)
    return engine.run(job, JobContext()).metadata


def test_rank_scores_best_first_and_stable_on_ties() -> None:
    ranking = rank_scores([0.5, 2.0, 2.0, -1.0])
    assert [r["index"] for r in ranking] == [1, 2, 0, 3]
    assert [r["score"] for r in ranking] == [2.0, 2.0, 0.5, -1.0]


def test_user_clip_is_listed_and_ranks_by_its_scores(models: Path, photos) -> None:
    engine = RankEngine([models / "clip"])
    assert "tiny-clip" in [m.name for m in engine.models()]
    ranking = run_rank(engine, "tiny-clip", "a cat", photos)["ranking"]
    direct = ClipRanker(find_clips([models / "clip"])[0]).score("a cat", photos)
    assert sorted(r["index"] for r in ranking) == [0, 1, 2, 3]
    assert [r["score"] for r in ranking] == sorted(direct, reverse=True)
    assert [r["score"] for r in ranking] == [direct[r["index"]] for r in ranking]
    assert len(set(direct)) == 4  # distinct images get distinct scores
    # the same request ranks the same way every time
    assert run_rank(engine, "tiny-clip", "a cat", photos)["ranking"] == ranking


def test_transparent_pixels_are_judged_as_grey(models: Path, photos) -> None:
    ranker = ClipRanker(find_clips([models / "clip"])[0])
    hidden = photos[0].copy()
    hidden[..., 3] = 0
    grey = np.full_like(photos[0], 128)
    grey[..., 3] = 255
    assert ranker.score("x", [hidden]) == ranker.score("x", [grey])


def test_a_clip_config_may_name_an_open_clip_architecture(tmp_path: Path) -> None:
    save_tiny_clip(tmp_path, "named")
    (tmp_path / "named.json").write_text(json.dumps({"model": "no-such-architecture"}))
    with pytest.raises(Unsupported, match="open_clip does not know"):
        ClipRanker(find_clips([tmp_path])[0])


def test_clip_weights_need_a_config_and_stay_inside_the_folder(
    tmp_path: Path, models: Path
) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "lonely.safetensors").write_bytes(b"")  # no .json beside it
    (folder / "old.pt").write_bytes(b"pickle")
    (folder / "old.json").write_text(json.dumps(TINY_CLIP))
    (folder / "linked.safetensors").symlink_to(models / "clip" / "tiny-clip.safetensors")
    (folder / "linked.json").write_text(json.dumps(TINY_CLIP))
    assert find_clips([folder]) == []


def test_rank_job_needs_inputs(models: Path) -> None:
    engine = RankEngine([models / "clip"])
    with pytest.raises(InvalidField, match="input"):
        engine_job(engine, Request(kind="rank", prompt="x", model="tiny-clip"))
    with pytest.raises(InvalidField, match="prompt"):
        engine_job(engine, Request(kind="rank", model="tiny-clip"), inputs=[np.zeros((8, 8, 4))])


def test_generate_candidates_come_back_ranked_by_clip(models: Path) -> None:
    save_single_file(build_tiny_pipeline(), models / "checkpoints" / "tiny.safetensors")
    rank = RankEngine([models / "clip"])
    engine = DiffusersEngine([models], device="cpu", ranker=rank.ranker)
    spec = Request(
        prompt="a red apple", model="tiny", width=64, height=64, steps=2, candidates=4, keep=2
    )
    result = engine.run(engine_job(engine, spec, seed=100), JobContext())
    assert result.metadata["ranked"] is True
    assert len(result.images) == 2
    first, second = result.images
    assert first.score >= second.score
    # the kept ones are the best of all four, scored by the same CLIP
    spec.keep = None
    everything = engine.run(engine_job(engine, spec, seed=100), JobContext())
    scores = sorted((o.score for o in everything.images), reverse=True)
    assert [first.score, second.score] == scores[:2]
    assert {o.seed for o in everything.images} == {100, 101, 102, 103}
    # scored alone or in a batch of four: the same score, to float rounding
    assert rank.scorer("tiny-clip")("a red apple", [first.image])[0] == pytest.approx(
        first.score, abs=1e-3
    )


@pytest.mark.skipif(_builtin_loader() is None, reason="the builtin CLIP's weights are not built")
def test_builtin_clip_puts_the_matching_texture_first() -> None:
    from brushlink.server.training import data

    engine = RankEngine([])
    assert BUILTIN_NAME in [m.name for m in engine.models()]
    colours = ("red", "green", "blue")
    textures = [data.render((c,), "polka dots", seed=3) for c in colours]
    inputs = [np.dstack([t, np.full(t.shape[:2], 255, np.uint8)]) for t in textures]
    for wanted, colour in enumerate(colours):
        prompt = data.caption((colour,), "polka dots")
        assert run_rank(engine, BUILTIN_NAME, prompt, inputs)["ranking"][0]["index"] == wanted
