"""Style without weights: OpenCV's non-photorealistic filters and colour transfer."""
