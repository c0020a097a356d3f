"""Stable Diffusion checkpoints on diffusers: the engine (``engine``), offline loading
(``loading``), the model store (``store``), tiling, previews and the out-of-memory retry."""
