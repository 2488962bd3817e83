"""Multi-exposure HDR: data and the synthetic generator, patches, evaluation against OpenCV merges, and the LiteRT merger."""
