"""Deepening a trained generator: the grown UNet computes exactly what the trained one did (plain,
inpainting and tiled), its added layers learn, and its depth travels with the saved weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushlink.server.engines.builtin import unet
from brushlink.server.training import grow

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    # random weights everywhere, biases too, stand in for trained ones: an added layer that
    # did not start as an identity would change the output
    torch.manual_seed(3)
    model = unet.build_unet().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _inputs(n: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    pixels = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    masks = (torch.rand(n, 1, 32, 32, generator=gen) > 0.5).float()
    noisy = torch.randn(n, unet.CHANNELS, 16, 16, generator=gen)
    return {
        "sample": torch.cat([noisy, unet.condition(pixels, masks, pixels.shape)], 1),
        "timestep": torch.tensor([20, 700][:n]),
        "encoder_hidden_states": torch.randn(n, 8, unet.TEXT_WIDTH, generator=gen),
        "class_labels": torch.randn(
            n, unet.UNET_CONFIG["projection_class_embeddings_input_dim"], generator=gen
        ),
    }


@pytest.mark.parametrize("layers,transformer_layers", [(2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("tile", ["none", "xy"])
def test_a_deepened_generator_draws_exactly_what_it_did(
    trained: torch.nn.Module, layers: int, transformer_layers: int, tile: str
) -> None:
    torch.manual_seed(0)
    grown = grow.grow(trained, layers, transformer_layers).eval()
    assert unet.depth(grown) == (layers, transformer_layers)
    count = sum(p.numel() for p in grown.parameters())
    assert count > sum(p.numel() for p in trained.parameters())
    unet.set_tiling(trained, tile)
    unet.set_tiling(grown, tile)
    with torch.no_grad():
        want = trained(**_inputs()).sample
        got = grown(**_inputs()).sample
    unet.set_tiling(trained, "none")
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_added_layers_learn(trained: torch.nn.Module) -> None:
    torch.manual_seed(0)
    grown = grow.grow(trained, 2, 2).train()
    loss = grown(**_inputs()).sample.square().mean()
    loss.backward()
    added = [
        "down_blocks.1.resnets.1.conv2.weight",  # a down block's added resnet
        "up_blocks.2.resnets.1.conv2.weight",  # an up block's, between its trained ones
        "up_blocks.1.attentions.1.proj_out.weight",  # an added attention
        "mid_block.attentions.0.transformer_blocks.1.ff.net.2.weight",  # an added transformer
    ]
    params = dict(grown.named_parameters())
    for name in added:
        assert params[name].grad is not None and float(params[name].grad.abs().sum()) > 0, name


def test_a_generator_cannot_be_grown_shallower(trained: torch.nn.Module) -> None:
    deeper = grow.grow(trained, 2, 1)
    with pytest.raises(ValueError, match="cannot shrink"):
        grow.grow(deeper, 1, 1)


def test_the_depth_travels_with_the_saved_weights(trained: torch.nn.Module, tmp_path: Path) -> None:
    torch.manual_seed(0)
    grown = grow.grow(trained, 2, 2).eval()
    unet.save_unet(grown, tmp_path / "deep.safetensors")
    loaded = unet.load_unet("cpu", tmp_path / "deep.safetensors")
    assert unet.depth(loaded) == (2, 2)
    with torch.no_grad():
        want = grown.half().float()(**_inputs()).sample  # saved in half precision
        got = loaded(**_inputs()).sample
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
