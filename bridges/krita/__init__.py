"""The Krita bridge: the pykrita plugin (brushlink.desktop + brushlink_krita/) and its bundler."""
