"""Which model a request without a model name goes to."""

from __future__ import annotations

from pathlib import Path

import pytest

from brushlink.plugin.errors import UnknownModel, Unsupported
from brushlink.plugin.request import Request
from brushlink.server.config import load_config
from brushlink.server.engines.catalog import build_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    home: Path = tmp_path_factory.mktemp("home")
    return build_registry(load_config(home), "cpu")


def model(registry, kind: str, **fields) -> str:
    return registry.resolve(Request(kind=kind, **fields))[1].name


def test_named_styles_and_colour_transfer_go_to_the_filters(registry) -> None:
    assert model(registry, "style", style="sketch") == "filters"
    assert model(registry, "style", prompt="") == "filters"  # reference only


def test_a_prompted_style_and_generation_go_to_a_generative_model(registry) -> None:
    assert model(registry, "style", prompt="as a watercolour") == "builtin"
    assert model(registry, "generate", prompt="red bricks") == "builtin"
    assert model(registry, "rank", prompt="red") == "builtin-clip"


def test_without_a_checkpoint_removal_goes_to_the_fill_and_a_texture_to_the_builtin(registry):
    # the built-in model knows 13 flat patterns: it inpaints only when asked for a texture
    assert model(registry, "inpaint") == "fill"
    assert model(registry, "inpaint", prompt="  ") == "fill"
    assert model(registry, "inpaint", prompt="blue polka dots") == "builtin"
    assert model(registry, "inpaint", model="builtin") == "builtin"


def test_names_are_checked(registry) -> None:
    assert model(registry, "inpaint", model="fill") == "fill"
    with pytest.raises(UnknownModel, match="fill"):  # lists what is installed
        model(registry, "inpaint", model="no-such-model")
    with pytest.raises(Unsupported, match="cannot do `generate`"):
        model(registry, "generate", model="filters")
