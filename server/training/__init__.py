"""The built-in model: procedural training data, a small CLIP and a small diffusion UNet.

``train`` regenerates the data and both models from a seed; ``weights/`` holds its output;
``bench`` measures them on held-out colour/pattern combinations. The engine that serves them is
``brushlink.server.engines.builtin``; ``clip_model.load_builtin_clip`` gives the CLIP to rankers.
"""
