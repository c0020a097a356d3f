"""The built-in model at run time: its manifest, CLIP, UNet, sampler and the engine serving it.
Training and research scripts live in ``brushlink.server.training``; ``weights/`` holds what
they made."""
