"""Upscaling: the ``upscale`` engine, a weight-free default and ESRGAN-family upscalers
loaded through spandrel, with tiled inference and an optional refine pass by a checkpoint."""
