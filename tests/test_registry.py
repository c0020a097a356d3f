"""Which model a request without a model name goes to."""

from __future__ import annotations

from pathlib import Path

import pytest

from brushlink.plugin.errors import UnknownModel, Unsupported
from brushlink.server.config import load_config
from brushlink.server.engines.catalog import build_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    home: Path = tmp_path_factory.mktemp("home")
    return build_registry(load_config(home), "cpu")


def test_named_styles_and_colour_transfer_go_to_the_filters(registry) -> None:
    assert registry.resolve(None, "style", style="sketch")[1].name == "filters"
    assert registry.resolve(None, "style", prompt="")[1].name == "filters"  # reference only


def test_a_prompted_style_and_generation_go_to_a_generative_model(registry) -> None:
    assert registry.resolve(None, "style", prompt="as a watercolour")[1].name == "builtin"
    assert registry.resolve(None, "generate", prompt="red bricks")[1].name == "builtin"
    assert registry.resolve(None, "inpaint")[1].name == "builtin"
    assert registry.resolve(None, "rank")[1].name == "builtin-clip"


def test_names_are_checked(registry) -> None:
    assert registry.resolve("fill", "inpaint")[1].engine == "fill"
    with pytest.raises(UnknownModel, match="fill"):  # lists what is installed
        registry.resolve("no-such-model", "inpaint")
    with pytest.raises(Unsupported, match="cannot do `generate`"):
        registry.resolve("filters", "generate")
