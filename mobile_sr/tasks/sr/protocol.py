"""The super-resolution conventions every part of mobile-sr shares: LR and SR images are RGB in
[0, 255] (uint8 pixels, float32 inside a model), and a model upscales by one of ``SCALES``."""

SCALES = (2, 3, 4)
CHANNELS = 3
PIXEL_RANGE = (0.0, 255.0)


def scales_text() -> str:
    """``2, 3 or 4``: the supported scales as messages list them."""
    return f"{', '.join(map(str, SCALES[:-1]))} or {SCALES[-1]}"


def check_scale(scale: int) -> None:
    """Raise :class:`ConfigError` unless ``scale`` is supported."""
    from mobile_sr.core.errors import ConfigError

    if scale not in SCALES:
        raise ConfigError(f"scale must be {scales_text()}, got {scale}")
