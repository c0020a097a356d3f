"""CLIP ranking: the ``rank`` engine and the open_clip weights it loads from model folders."""
