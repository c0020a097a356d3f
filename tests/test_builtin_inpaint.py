"""The built-in generator's inpainting inputs: what the UNet reads besides the noise, the
training examples that teach it to fill a mask from the prompt, and older generators without
those inputs loading unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brushlink.server.engines.builtin import unet
from brushlink.server.training import data, inpaint_examples, train_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset() -> tuple[np.ndarray, list[data.Sample]]:
    return data.make_dataset(64, seed=11)


def test_inpainting_examples_keep_the_captioned_texture_inside_the_mask(dataset) -> None:
    images, specs = dataset
    pixels, _, _ = train_batches.draw_batch(images, specs, 48, random.Random(1))
    out, masks = inpaint_examples.make(pixels, images, random.Random(2), share=1.0)
    assert out.shape == pixels.shape and masks.shape == (48, 1, data.SIZE, data.SIZE)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    inside = masks.expand_as(pixels) > 0
    assert torch.equal(out[inside], pixels[inside])  # the caption's texture, untouched
    areas = masks.mean(dim=(1, 2, 3))
    assert areas.min() >= 1 / 16 and areas.max() < 1.0  # a region, never the whole image
    # around the mask: the same texture for about a third, something else for the rest
    changed = [not torch.equal(out[i], pixels[i]) for i in range(48)]
    assert 0.45 < sum(changed) / 48 < 0.9

    plain, all_ones = inpaint_examples.make(pixels, images, random.Random(2), share=0.0)
    assert torch.equal(plain, pixels) and bool((all_ones == 1).all())


def test_the_condition_blanks_the_masked_region_and_carries_the_mask() -> None:
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 4:30] = 1.0
    cond = unet.condition(image, mask, image.shape)
    assert cond.shape == (1, unet.CONDITION_CHANNELS, 16, 16)
    masked = unet.unfold(cond[:, : unet.CHANNELS])
    assert torch.equal(masked, image * (1 - mask))
    assert torch.equal(F.pixel_shuffle(cond[:, unet.CHANNELS :], unet.FOLD), mask)
    # generate and img2img: nothing known, everything to draw
    blank = unet.condition(None, None, (2, 3, 32, 32))
    assert bool((blank[:, : unet.CHANNELS] == 0).all())
    assert bool((blank[:, unet.CHANNELS :] == 1).all())


def test_a_plain_generator_loads_with_zeroed_inputs_and_draws_the_same(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = unet.build_unet(inpainting=False).eval()
    unet.save_unet(plain, tmp_path / "plain.safetensors")
    widened = unet.load_unet("cpu", tmp_path / "plain.safetensors")
    assert widened.conv_in.in_channels == unet.CHANNELS + unet.CONDITION_CHANNELS
    assert bool((widened.conv_in.weight[:, unet.CHANNELS :] == 0).all())

    # the same weights as saved (half precision), without the new inputs
    reference = unet.build_unet(inpainting=False).eval()
    state = widened.state_dict()
    state["conv_in.weight"] = state["conv_in.weight"][:, : unet.CHANNELS]
    reference.load_state_dict(state)
    x = torch.randn(2, unet.CHANNELS, 16, 16)
    t = torch.tensor([10, 500])
    text = torch.randn(2, 8, unet.TEXT_WIDTH)
    pooled = torch.randn(2, unet.UNET_CONFIG["projection_class_embeddings_input_dim"])
    cond = unet.condition(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32).round(), x.shape)
    with torch.no_grad():
        want = reference(x, t, encoder_hidden_states=text, class_labels=pooled).sample
        got = widened(torch.cat([x, cond], 1), t, encoder_hidden_states=text, class_labels=pooled)
    torch.testing.assert_close(got.sample, want, atol=1e-5, rtol=1e-5)
