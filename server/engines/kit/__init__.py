"""What every generative engine needs and does the same way: candidate seeds and CLIP ranking
(``candidates``), the region around a mask and its feathered paste-back (``regions``), and
progress with occasional previews (``steps``)."""
