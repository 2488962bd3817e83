"""The multi-exposure HDR conventions every part of mobile-sr shares (Kalantari et al. 2017,
followed by AHDRNet and the HDR U-Net paper).

An LDR exposure is RGB in [0, 1]; exposure times are relative to the shortest one
(t = 2^(EV - EV_min)); the HDR image is linear radiance aligned to the middle (reference) exposure,
normalised so that the shortest exposure saturates at 1; the camera response is taken as gamma 2.2
(a real bracket is mapped into it, :mod:`mobile_sr.tasks.hdr.response`), so an exposure's
HDR-domain version is L^2.2 / t. A network sees each exposure next to its HDR-domain version
tonemapped with the mu-law (6 channels), and predicts the mu-law tonemapped HDR image: the
HDR-domain half is in the output's own domain, where the well-exposed reference is already the
answer, and its 8-bit steps are even in log radiance (L^2.2 / t of a long exposure spans a few
1/255 steps only).
"""

GAMMA = 2.2
EXPOSURES = 3
REFERENCE_EXPOSURE = 1  # the middle exposure
INPUT_CHANNELS = 6
VALUE_RANGE = (0.0, 1.0)  # exposures, their HDR-domain versions and the tonemapped output
