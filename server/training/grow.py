"""Grow a trained generator deeper without changing what it computes.

The built-in generator starts small because step 3 trains on a 2-core CPU; a later sitting of
step 4 can deepen it (``--layers-per-block``, ``--transformer-layers``) and train on. Every
added layer starts as an identity, so the grown model computes exactly what the trained one did
and training continues from there instead of from scratch (as Stable Diffusion's inpainting
models gain their extra inputs, zeroed):

* an added resnet has its last convolution zeroed, so it returns its input (its shortcut);
* an added cross-attention layer has its output projection zeroed;
* an added transformer block has the projections that write into the residual stream zeroed.

The UNet's skip connections decide where added layers go. A down block's added layers come
after its trained ones, so their outputs repeat its last one; the matching up block then reads
one more skip per added layer, just after its first resnet, and the added up layers placed
there ignore that skip. Every trained up layer keeps reading the tensor it was trained on.
"""

from __future__ import annotations

import re

import torch
from diffusers import UNet2DConditionModel

from brushlink.server.engines.builtin.unet import depth

_BLOCK = re.compile(r"^(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$")
_TRANSFORMER = re.compile(r"^(.*transformer_blocks\.)(\d+)\.(.*)$")
# what an added attention or transformer block writes into the residual stream
_ZEROED = {
    "attention": (".proj_out.",),
    "transformer": ("attn1.to_out.0.", "attn2.to_out.0.", "ff.net.2."),
}


def grow(model: UNet2DConditionModel, layers: int, transformer_layers: int) -> UNet2DConditionModel:
    """A copy of ``model`` with ``layers`` per block and ``transformer_layers`` per attention.

    Neither may be smaller than ``model``'s. The added layers' other weights are drawn from
    torch's random generator, so seed it first for a reproducible result.
    """
    old_layers, old_transformer = depth(model)
    if layers < old_layers or transformer_layers < old_transformer:
        raise ValueError(
            f"cannot shrink a generator of depth {old_layers}/{old_transformer} "
            f"to {layers}/{transformer_layers}"
        )
    # diffusers would reset the keys a config took by default ("_use_default_values")
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    config |= {"layers_per_block": layers, "transformer_layers_per_block": transformer_layers}
    grown = UNet2DConditionModel(**config)
    trained = model.state_dict()
    state = grown.state_dict()  # shares the parameters' storage: filling it fills ``grown``
    added_up = layers - old_layers  # up layers inserted after each up block's first one
    for key, value in state.items():
        source, added = _source_key(key, old_layers, added_up, old_transformer)
        if source is not None:
            value.copy_(trained[source])
        elif added == "resnet":
            if ".conv2." in key or key.endswith("conv_shortcut.bias"):
                value.zero_()
            elif key.endswith("conv_shortcut.weight"):
                # an added up resnet reads (its input, a skip) and passes the input through
                value.zero_()
                value[:, : value.shape[0], 0, 0] = torch.eye(value.shape[0])
        elif any(part in key for part in _ZEROED.get(added, ())):
            value.zero_()
    return grown.to(next(model.parameters()).device).train(model.training)


def _source_key(
    key: str, old_layers: int, added_up: int, old_transformer: int
) -> tuple[str | None, str]:
    """The trained weight ``key`` starts from, or None and what was added ("resnet",
    "attention" or "transformer") for a weight of an added layer."""
    match = _BLOCK.match(key)
    if match:
        side, block, kind, index, rest = match.groups()
        i = int(index)
        added = i >= old_layers if side == "down" else 0 < i <= added_up
        if added:
            return None, kind[:-1]
        if side == "up" and i > 0:
            i -= added_up
        key = f"{side}_blocks.{block}.{kind}.{i}.{rest}"
    match = _TRANSFORMER.match(key)
    if match and int(match.group(2)) >= old_transformer:
        return None, "transformer"
    return key, ""
