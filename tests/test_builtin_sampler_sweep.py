"""The sampler sweep chooses settings on combinations seen in training, never on held-out ones,
and measures every setting on the same draws."""

from __future__ import annotations

import pytest

from brushlink.server.training import data
from brushlink.server.training.sampler_sweep import main, seen_combinations, sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_seen_combinations_never_include_a_held_out_one() -> None:
    combos = seen_combinations()
    assert len(set(combos)) == 52
    assert not set(combos) & data.held_out()
    assert seen_combinations() == combos  # the same set every time


def test_each_setting_is_measured_on_the_same_draws() -> None:
    guided, repeated, unguided = sweep([(2.0, 1.0), (2.0, 1.0), (0.0, 0.0)], 3, 1, 2)
    assert guided == repeated and guided.draws == 6
    # with guidance the asked colour is there; with none the model ignores the prompt
    assert guided.colour_match == 1.0 > unguided.colour_match


def test_a_setting_must_name_both_guidances() -> None:
    with pytest.raises(SystemExit):
        main(["2"])
