"""Versioned scoring protocols: every convention that changes a number, in one frozen object.

A protocol is named ``<name>`` and carries an integer ``version``; a record
stores both, and any change to a convention must bump the version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .metrics.instance import DSB2018_THRESHOLDS
from .metrics.intercept import PATTERNS
from .errors import UnknownNameError

BOUNDARY_METRICS = ("vi", "vi_split", "vi_merge", "ari", "map", "bf1", "bde", "dice")
TOPOLOGY_METRICS = ("betti0_error", "betti1_error", "cldice")
GRAIN_METRICS = ("grain_count_pred", "grain_count_gt", "size_js", "shape_js")
#: Grain-size agreement, on every boundary protocol: |G_pred - G_true| (ASTM E112), grain-count ratio
#: (pred / true), Jensen-Shannon distance of the intercept-length distributions.
GRAIN_SIZE_METRICS = ("astm_g_error", "grain_count_ratio", "intercept_js")
#: Optional group (``score(..., metrics="extended")``, ``--metrics extended``); see :mod:`grainbench.metrics.extended`.
EXTENDED_METRICS = ("rand_index", "pratt_fom", "completeness", "correctness", "quality", "mean_iou",
                    "fw_iou", "dice_grain")
#: The metric groups a score can add to the protocol's own.
METRIC_GROUPS = ("standard", "extended")
PHASE_METRICS = ("accuracy", "iou", "dice", "bf1", "bde")


@dataclass(frozen=True)
class Protocol:
    """How a prediction is post-processed and scored.

    Attributes
    ----------
    name, version : str, int
        Identity of the protocol; records carry both.
    task : {"boundary", "phase"}
        ``boundary``: grain boundaries, scored as segmentations (VI, ARI,
        mAP) and as boundaries (BF1, BDE, Dice). ``phase``: binary phase
        (foreground) masks.
    threshold : float
        A probability ``p > threshold`` is boundary/foreground (argmax of two classes).
    closing_size : int
        Side of the square closing applied to the binarised prediction (1 = none).
    skeletonize : bool
        Thin the prediction to 1-pixel boundaries.
    thin_gt : bool
        Apply the same closing and thinning to the ground truth (for thick
        hand-traced masks); the WPU-Net ground truth is already 1 pixel wide.
    crop : int
        Pixels dropped from every side before scoring.
    connectivity : int
        Grain connectivity: 1 = 4-connected in 2D.
    bf1_tolerance : float
        BF1 match distance in pixels.
    map_thresholds : tuple of float
        IoU thresholds of the mAP.
    map_frame : bool
        Set a 1-pixel frame to boundary before the mAP's grain labelling.
    min_grain_diameter : float
        Smallest equivalent diameter (px) in the grain statistics.
    extras : bool
        Also compute topology (Betti errors, clDice) and grain statistics.
    intercept_pattern : {"rows-columns", "e112", "line-grid"}
        Test pattern of the grain-size agreement (:data:`GRAIN_SIZE_METRICS`,
        boundary task): chords under NIST's rules
        (:mod:`grainbench.metrics.intercept`). ``"rows-columns"`` (every row
        and column) because no 8-connected one-pixel skeleton slips through
        it and a 1024 x 1024 map gives thousands of chords. Added without a
        version bump: it only defines columns that records made before it do
        not have, and no existing number changes.
    quality_tolerance : float
        Tolerance theta (pixels) of completeness / correctness / quality in
        the extended group.
    reference : str
        Where the conventions come from.
    """

    name: str
    version: int
    task: str = "boundary"
    threshold: float = 0.5
    closing_size: int = 3
    skeletonize: bool = True
    thin_gt: bool = False
    crop: int = 10
    connectivity: int = 1
    bf1_tolerance: float = 4.0
    map_thresholds: tuple[float, ...] = DSB2018_THRESHOLDS
    map_frame: bool = True
    min_grain_diameter: float = 0.0
    extras: bool = True
    intercept_pattern: str = "rows-columns"
    quality_tolerance: float = 2.0
    reference: str = ""
    description: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        """``name@version``, the key stored in run records."""
        return f"{self.name}@{self.version}"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The columns a score under this protocol has (without the optional groups)."""
        if self.task == "phase":
            return PHASE_METRICS
        return BOUNDARY_METRICS + GRAIN_SIZE_METRICS + ((TOPOLOGY_METRICS + GRAIN_METRICS) if self.extras else ())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["map_thresholds"] = list(self.map_thresholds)
        return d


_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry; a name can only be registered once."""
    if protocol.task not in ("boundary", "phase"):
        raise ValueError(f"protocol {protocol.name!r}: unknown task {protocol.task!r}")
    if protocol.intercept_pattern not in PATTERNS:
        raise ValueError(f"protocol {protocol.name!r}: unknown intercept pattern {protocol.intercept_pattern!r}")
    if protocol.name in _PROTOCOLS and _PROTOCOLS[protocol.name] != protocol:
        raise ValueError(f"protocol {protocol.name!r} is already registered with other settings")
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str | Protocol) -> Protocol:
    """Look a protocol up by name (``"wpunet-2019"`` or ``"wpunet-2019@1"``)."""
    if isinstance(name, Protocol):
        return name
    base, _, version = name.partition("@")
    if base not in _PROTOCOLS:
        raise UnknownNameError(f"unknown protocol {name!r}; known: {', '.join(sorted(_PROTOCOLS))}")
    protocol = _PROTOCOLS[base]
    if version and version != str(protocol.version):
        raise UnknownNameError(f"protocol {base!r} is at version {protocol.version}, not {version}")
    return protocol


def list_protocols() -> list[Protocol]:
    return [_PROTOCOLS[k] for k in sorted(_PROTOCOLS)]


register_protocol(Protocol(
    name="wpunet-2019", version=1, task="boundary",
    reference="Ma et al., WPU-Net (2019), and the authors' segmentation/evaluation.py",
    description="argmax, 3x3 closing, skeletonize; crop 10 px; 4-connected grains; "
                "VI (gala split_vi), ARI on all pixels, DSB-2018 mAP with a 1-px frame; BF1 at 4 px, BDE, Dice; "
                "ASTM E112 G error, grain-count ratio and intercept JS from chords on every row and column",
))
register_protocol(Protocol(
    name="traced-2023", version=1, task="boundary", thin_gt=True,
    reference="seed 003: hand-traced boundary masks several pixels wide (e.g. tbm, 347H)",
    description="as wpunet-2019, with the ground truth closed and skeletonised the same way as the prediction",
))
register_protocol(Protocol(
    name="phase-2022", version=1, task="phase", closing_size=1, skeletonize=False, crop=0,
    map_frame=False, extras=False,
    reference="James et al., 3D CNNs for dendrite segmentation (seed 004), Table 2",
    description="threshold 0.5; per-slice pixel accuracy, foreground IoU, Dice, BF1 at 4 px and BDE "
                "on the phase boundary",
))
