"""The Blender bridge: the extension package (``extension/``) and the bundler that zips it.

Nothing here imports ``bpy``: ``bundle.py`` runs in the brushlink command line, the extension
runs inside Blender.
"""
