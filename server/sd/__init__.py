"""Stable Diffusion checkpoints on diffusers: offline loading, the model store, tiling, previews
and the out-of-memory retry. The engine that serves jobs with them is ``engines/diffusers_engine``.
"""
