"""Super-resolution: data, patches, evaluation against bicubic, and the LiteRT upscaler."""
