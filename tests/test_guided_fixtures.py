"""The tiny guided-generation models (LoRA, ControlNet, textual inversion, VAE) are in the file
layouts users download, load through the diffusers loaders a real file goes through, offline,
and change what the tiny pipelines draw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from fixtures.tiny_controlnet import build_tiny_controlnet, save_controlnet_single_file
from fixtures.tiny_guided import (
    build_tiny_vae,
    differs,
    load_embedding,
    load_lora,
    random_lora,
    read_safetensors,
    render,
    save_embedding_a1111,
    save_kohya_lora,
    save_peft_lora,
    save_vae_single_file,
    sidecar,
    unload_embedding,
)
from fixtures.tiny_sd import build_tiny_pipeline, build_tiny_sdxl_pipeline
from safetensors.torch import load_file

from brushlink.plugin.errors import Unsupported
from brushlink.server.engines.diffusers import loading

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ["sd1", "sdxl"]


@pytest.fixture(scope="module")
def pipes() -> dict[str, Any]:
    return {"sd1": build_tiny_pipeline(seed=0), "sdxl": build_tiny_sdxl_pipeline(seed=0)}


@pytest.fixture(scope="module")
def bases(pipes: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each pipeline's image with nothing loaded."""
    return {family: render(pipe) for family, pipe in pipes.items()}


# --------------------------------------------------------------------------- LoRA


def test_kohya_lora_sd1_layout(pipes: dict[str, Any], tmp_path: Path) -> None:
    state, meta = read_safetensors(
        save_kohya_lora(pipes["sd1"], tmp_path / "style.safetensors", rank=4)
    )
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    assert state[f"{name}.lora_down.weight"].shape == (4, 32)
    assert state[f"{name}.lora_up.weight"].shape == (32, 4)
    assert state[f"{name}.alpha"].shape == () and state[f"{name}.alpha"].item() == 2.0
    conv = "lora_unet_up_blocks_1_attentions_0_proj_in"  # a 1x1 convolution in SD 1.x
    assert state[f"{conv}.lora_down.weight"].shape == (4, 32, 1, 1)
    assert "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj.alpha" in state
    assert "lora_te_text_model_encoder_layers_1_self_attn_out_proj.lora_up.weight" in state
    assert "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight" in state
    assert {v.dtype for v in state.values()} == {torch.float16}
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in state)
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2"
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    unet_only, meta = read_safetensors(
        save_kohya_lora(pipes["sd1"], tmp_path / "unet-only.safetensors", text_encoder=False)
    )
    assert all(k.startswith("lora_unet_") for k in unet_only)
    assert meta["ss_network_train_unet_only"] == "True"


def test_kohya_lora_sdxl_layout(pipes: dict[str, Any], tmp_path: Path) -> None:
    """kohya trains SDXL on the original UNet, so its LoRAs use the LDM block names."""
    state, meta = read_safetensors(save_kohya_lora(pipes["sdxl"], tmp_path / "style.safetensors"))
    # the tiny SDXL UNet: input block 3 = second down block, output blocks 0-1 = first up block
    for name in [
        "lora_unet_input_blocks_3_1_transformer_blocks_1_attn2_to_k",
        "lora_unet_input_blocks_3_1_proj_in",
        "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2",
        "lora_unet_output_blocks_1_1_proj_out",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te2_text_model_encoder_layers_1_mlp_fc2",
    ]:
        assert {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"} <= set(state)
    assert state[
        "lora_te2_text_model_encoder_layers_0_self_attn_v_proj.lora_down.weight"
    ].shape == (
        4,
        48,
    )
    assert not any("down_blocks" in k or k.startswith("lora_te_") for k in state)
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"


def test_peft_lora_layout(pipes: dict[str, Any], tmp_path: Path) -> None:
    state, meta = read_safetensors(save_peft_lora(pipes["sdxl"], tmp_path / "style.safetensors"))
    for key in [
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
        "unet.up_blocks.0.attentions.1.proj_in.lora_B.weight",
        "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight",
        "text_encoder_2.text_model.encoder.layers.1.mlp.fc1.lora_B.weight",
    ]:
        assert key in state
    adapter = json.loads(meta["lora_adapter_metadata"])
    assert adapter["unet.r"] == 4 and adapter["unet.lora_alpha"] == 2.0
    assert "text_encoder_2.target_modules" in adapter
    sd1_state, _ = read_safetensors(save_peft_lora(pipes["sd1"], tmp_path / "sd1.safetensors"))
    assert "unet.down_blocks.0.attentions.0.proj_out.lora_A.weight" in sd1_state
    assert not any(k.startswith("text_encoder_2.") for k in sd1_state)


SAVERS = {
    "kohya": save_kohya_lora,
    "peft": save_peft_lora,
    "peft-no-metadata": lambda pipe, path: save_peft_lora(pipe, path, with_metadata=False),
}


@pytest.fixture
def unloads(pipes: dict[str, Any]) -> Iterator[None]:
    yield
    for pipe in pipes.values():
        pipe.unload_lora_weights()


@pytest.mark.usefixtures("unloads")
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_loads_with_its_weights_in_every_layout(
    family: str, pipes: dict[str, Any], bases: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Every layout loads from a file path into the same LoRA: the adapted layers hold exactly
    the random weights, with scale alpha / rank, so all draw the same image."""
    pipe = pipes[family]
    expected = random_lora(pipe)
    images = []
    for layout, save in SAVERS.items():
        path = save(pipe, tmp_path / f"{layout}.safetensors")
        pipe.load_lora_weights(str(path), adapter_name=layout)  # the plain call works too
        assert pipe.get_list_adapters() == {c: [layout] for c in expected}
        for component, layers in expected.items():
            model = getattr(pipe, component)
            for module, layer in layers.items():
                loaded = model.get_submodule(module)
                up = loaded.lora_B[layout].weight * loaded.scaling[layout]
                assert torch.equal(loaded.lora_A[layout].weight, layer.down)
                rank = layer.down.shape[0]
                torch.testing.assert_close(up, layer.up * layer.alpha / rank, rtol=1e-6, atol=0)
        images.append(render(pipe))
        pipe.unload_lora_weights()
    assert differs(images[0], bases[family])
    for image in images[1:]:
        np.testing.assert_allclose(image, images[0], atol=1e-6)


@pytest.mark.usefixtures("unloads")
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_weight_zero_and_unloading_restore_the_image_exactly(
    family: str, pipes: dict[str, Any], bases: dict[str, np.ndarray], tmp_path: Path
) -> None:
    pipe, base = pipes[family], bases[family]
    load_lora(pipe, save_kohya_lora(pipe, tmp_path / "a.safetensors"), "a")
    pipe.set_adapters(["a"], adapter_weights=[0.0])
    np.testing.assert_array_equal(render(pipe), base)
    pipe.set_adapters(["a"], adapter_weights=[1.0])
    assert differs(render(pipe), base)
    pipe.delete_adapters("a")
    np.testing.assert_array_equal(render(pipe), base)
    load_lora(pipe, save_peft_lora(pipe, tmp_path / "b.safetensors"), "b")
    assert differs(render(pipe), base)
    pipe.unload_lora_weights()
    np.testing.assert_array_equal(render(pipe), base)


@pytest.mark.usefixtures("unloads")
@pytest.mark.parametrize("family", FAMILIES)
def test_two_loras_stack(
    family: str, pipes: dict[str, Any], bases: dict[str, np.ndarray], tmp_path: Path
) -> None:
    pipe = pipes[family]
    first = save_kohya_lora(pipe, tmp_path / "a.safetensors", seed=1)
    second = save_peft_lora(pipe, tmp_path / "b.safetensors", seed=2)
    load_lora(pipe, first, "a")
    load_lora(pipe, second, "b")
    pipe.set_adapters(["a", "b"], adapter_weights=[1.0, 1.0])
    both = render(pipe)
    pipe.set_adapters(["a"], adapter_weights=[1.0])
    only_a = render(pipe)
    pipe.set_adapters(["b"], adapter_weights=[1.0])
    only_b = render(pipe)
    for one in (only_a, only_b):
        assert differs(both, one) and differs(one, bases[family])
    assert differs(only_a, only_b)
    pipe.unload_lora_weights()
    np.testing.assert_array_equal(render(pipe), bases[family])


# --------------------------------------------------------------------------- textual inversion


def test_embedding_layouts(pipes: dict[str, Any], tmp_path: Path) -> None:
    state, _ = read_safetensors(save_embedding_a1111(pipes["sd1"], tmp_path / "sd1.safetensors"))
    assert {k: tuple(v.shape) for k, v in state.items()} == {"emb_params": (2, 32)}
    state, _ = read_safetensors(
        save_embedding_a1111(pipes["sdxl"], tmp_path / "xl.safetensors", vectors=3)
    )
    assert {k: tuple(v.shape) for k, v in state.items()} == {"clip_l": (3, 32), "clip_g": (3, 48)}
    assert state["clip_l"].dtype == torch.float16


def _encoders(pipe: Any) -> list[tuple[Any, Any, str]]:
    pairs = [(pipe.tokenizer, pipe.text_encoder, "emb_params")]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs = [(pipe.tokenizer, pipe.text_encoder, "clip_l")]
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2, "clip_g"))
    return pairs


@pytest.mark.parametrize("family", FAMILIES)
def test_embedding_loads_steers_the_prompt_and_unloads(
    family: str, pipes: dict[str, Any], bases: dict[str, np.ndarray], tmp_path: Path
) -> None:
    pipe, token = pipes[family], "<tiny-style>"
    with_token, without = f"a {token} red brick wall", "a red brick wall"
    before = [(len(t), e.get_input_embeddings().weight.clone()) for t, e, _ in _encoders(pipe)]
    path = save_embedding_a1111(pipe, tmp_path / "tiny-style.safetensors", vectors=2)
    state = load_file(str(path))
    load_embedding(pipe, path, token)
    try:
        for tokenizer, encoder, key in _encoders(pipe):
            ids = tokenizer.convert_tokens_to_ids([token, f"{token}_1"])
            rows = encoder.get_input_embeddings().weight[ids]
            assert torch.equal(rows, state[key].float())
            prompt = pipe.maybe_convert_prompt(with_token, tokenizer)
            assert tokenizer(prompt).input_ids[2:4] == ids  # the token stands for both vectors
        steered = render(pipe, with_token)
        assert differs(steered, render(pipe, without))
        np.testing.assert_array_equal(render(pipe, without), bases[family])
    finally:
        unload_embedding(pipe, token)
    for (tokenizer, encoder, _), (size, weights) in zip(_encoders(pipe), before, strict=True):
        assert len(tokenizer) == size
        assert torch.equal(encoder.get_input_embeddings().weight, weights)
    # another embedding under the same token draws another picture
    load_embedding(pipe, save_embedding_a1111(pipe, tmp_path / "other.safetensors", seed=1), token)
    try:
        assert differs(render(pipe, with_token), steered)
    finally:
        unload_embedding(pipe, token)
    np.testing.assert_array_equal(render(pipe, without), bases[family])


# --------------------------------------------------------------------------- VAE


def test_vae_single_file_loads_and_changes_the_decoded_image(
    pipes: dict[str, Any], bases: dict[str, np.ndarray], tmp_path: Path
) -> None:
    vae = build_tiny_vae(seed=1)
    path = save_vae_single_file(vae, tmp_path / "tiny-vae.safetensors")
    state, _ = read_safetensors(path)
    assert state["encoder.down.0.block.0.norm1.weight"].shape == (16,)
    assert state["decoder.up.3.block.0.conv1.weight"].shape == (32, 32, 3, 3)
    assert state["encoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)
    assert {"quant_conv.weight", "post_quant_conv.weight", "decoder.norm_out.bias"} <= set(state)
    assert not any(k.startswith("first_stage_model.") for k in state)
    loaded = AutoencoderKL.from_single_file(
        str(path), config=str(sidecar(path)), subfolder="vae", local_files_only=True
    )
    reference = vae.state_dict()
    assert loaded.state_dict().keys() == reference.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, reference[key]), key
    for family, pipe in pipes.items():
        original = pipe.vae
        pipe.vae = loaded
        try:
            assert differs(render(pipe), bases[family])
        finally:
            pipe.vae = original
        np.testing.assert_array_equal(render(pipe), bases[family])


# --------------------------------------------------------------------------- all of them


def test_files_are_deterministic_and_not_taken_for_checkpoints(
    pipes: dict[str, Any], tmp_path: Path
) -> None:
    """The same seed writes the same tensors and metadata (not always the same bytes: safetensors
    writes the metadata in hash order); the server's checkpoint detector refuses each file (they
    hold no UNet) instead of trying to load it as a model."""
    pipe = pipes["sdxl"]
    makers = {
        "kohya": lambda path: save_kohya_lora(pipe, path, seed=3),
        "peft": lambda path: save_peft_lora(pipe, path, seed=3),
        "embedding": lambda path: save_embedding_a1111(pipe, path, seed=3),
        "vae": lambda path: save_vae_single_file(build_tiny_vae(seed=3), path),
        "controlnet": lambda path: save_controlnet_single_file(
            build_tiny_controlnet(pipes["sd1"], seed=3), path
        ),
    }
    for name, make in makers.items():
        first = make(tmp_path / "a" / f"{name}.safetensors")
        second = make(tmp_path / "b" / f"{name}.safetensors")
        (one, one_meta), (two, two_meta) = read_safetensors(first), read_safetensors(second)
        assert one_meta == two_meta and one.keys() == two.keys(), name
        assert all(torch.equal(one[k], two[k]) for k in one), name
        with pytest.raises(Unsupported, match="holds no Stable Diffusion UNet"):
            loading.detect_single_file(first)
