"""A classical floor that needs no training: smoothing, a ridge filter and Otsu's threshold.

Grain boundaries in optical micrographs are thin dark valleys. Per slice:
Gaussian smoothing (sigma 1 px) against noise, the Sato tubeness filter for
dark ridges at scales 1-2 px, then Otsu's threshold ``t`` of the ridge
response ``r``. The returned "probability" is ``r / (r + t)``, which is
above 0.5 exactly where ``r > t``, so the protocol's argmax, closing and
skeletonisation turn it into boundaries like any network output. Every
leaderboard shows it, so one can see what learning adds.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import filters

from grainbench.methods import Method, check_volume_input


class Classical(Method):
    """Gaussian + Sato ridge filter + Otsu threshold; no parameters, no training.

    Parameters
    ----------
    smoothing : float
        Gaussian sigma in pixels before the ridge filter.
    sigmas : tuple of float
        Scales of the Sato filter (pixels).
    dark_boundaries : bool
        Boundaries are darker than grains (etched optical micrographs).
    """

    name = "classical"
    context = "2d"
    reference = "Sato et al. 1998 (tubeness filter) + Otsu 1979 threshold; a no-training floor"
    description = "Gaussian smoothing + Sato ridge filter + per-slice Otsu threshold"
    presets = ()

    def __init__(self, smoothing: float = 1.0, sigmas: tuple[float, ...] = (1.0, 2.0), dark_boundaries: bool = True
                 ) -> None:
        self.smoothing, self.sigmas, self.dark_boundaries = float(smoothing), tuple(sigmas), bool(dark_boundaries)

    def config(self) -> dict:
        return {**super().config(), "smoothing": self.smoothing, "sigmas": list(self.sigmas),
                "dark_boundaries": self.dark_boundaries}

    def ridge(self, image: np.ndarray) -> np.ndarray:
        """Ridge response of one (H, W) slice, >= 0."""
        smooth = ndi.gaussian_filter(image, self.smoothing) if self.smoothing > 0 else image
        return filters.sato(smooth, sigmas=self.sigmas, black_ridges=self.dark_boundaries)

    def predict(self, image: np.ndarray, prev_boundary: np.ndarray | None = None) -> np.ndarray:
        image = check_volume_input(image, prev_boundary, self.context)
        out = np.empty(image.shape, np.float32)
        for z, sl in enumerate(image):
            r = self.ridge(sl)
            t = filters.threshold_otsu(r) if np.ptp(r) > 0 else np.inf
            out[z] = r / (r + t) if np.isfinite(t) and t > 0 else 0.0
        return np.clip(out, 0.0, 1.0)
