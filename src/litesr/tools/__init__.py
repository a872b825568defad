"""Tools for people's own images: ``litesr upscale`` (tiled, in a memory budget) and
``litesr export`` (ONNX with a dynamic image size)."""
