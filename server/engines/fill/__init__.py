"""Content-aware fill without weights: the ``fill`` engine and the fill methods it chooses from."""
