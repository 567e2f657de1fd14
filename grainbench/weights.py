"""Published weights: a trained run's network as safetensors plus a model card, and loading them back.

- :func:`export_weights` (``grainbench export RUN``) writes ``<stem>.safetensors``
  (the network's tensors; the card is also stored in the file's metadata, so
  the weights file alone is enough to rebuild the method) and ``<stem>.json``
  (the same card, with the file's sha256, for people and web pages).
- :func:`resolve_weights` (``grainbench run --weights``, ``grainbench track
  --weights``) takes a local file or an ``http(s)`` URL pinned by its sha256
  (``URL#sha256=HEX`` or a separate hash), downloads it with pooch into the
  data cache (``<cache>/weights/<sha256>.safetensors``), checks the hash and
  reads the card; :func:`apply_weights` puts the tensors into a method after
  checking method, input channels, names and shapes.

Never unpickled: safetensors holds tensors and a string-to-string header only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputFileError
from .io import atomic_write, sha256_file
from .names import path_component

#: ``format`` of a model card, and its version (bump when a field changes meaning).
CARD_FORMAT = "grainbench-weights"
CARD_VERSION = 1
#: The safetensors metadata key holding the card (JSON text).
METADATA_KEY = "grainbench_card"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class WeightsError(InputFileError):
    """Weights cannot be used: wrong method, shapes or channels, a hash mismatch, a truncated file."""


@dataclass(frozen=True)
class ExternalWeights:
    """Weights from outside the run folder: where they came from, the local file, its sha256 and card."""

    source: str
    path: str
    sha256: str
    card: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """What a record stores (``config.weights``): source, sha256, and the record the card names."""
        return {"source": self.source, "sha256": self.sha256, "record_id": self.card.get("record_id"),
                "method": self.card.get("method")}


# --------------------------------------------------------------------------- export

def export_weights(ref: str | os.PathLike, out_dir: str | os.PathLike, *, records_dir: Path, work_root: Path,
                   stem: str | None = None) -> tuple[Path, Path]:
    """Write the weights of run ``ref`` (run id, record file or work folder) as safetensors + model card.

    Returns (weights path, card path): ``<out_dir>/<stem>.safetensors`` and
    ``<stem>.json``; ``stem`` defaults to the record's run id. The run's
    ``model.pt`` must still have the sha256 its record holds.
    """
    import torch
    from safetensors.torch import save

    from . import __version__
    from .training.checkpoint import load_checkpoint

    init, rec = record_for(ref, records_dir=records_dir, work_root=work_root)
    state = load_checkpoint(init.path)
    try:
        method_cfg = dict(state["config"]["method"])
        method_state = state["method_state"]
        net = {k: v.contiguous() for k, v in method_state["net"].items()}
    except (KeyError, TypeError, AttributeError):
        raise WeightsError(f"{init.path}: not a checkpoint of a grainbench method (no method config/state)") from None
    if not all(isinstance(v, torch.Tensor) for v in net.values()):
        raise WeightsError(f"{init.path}: the network state holds non-tensor values; cannot export")
    cfg = rec["config"]
    card = {
        "format": CARD_FORMAT, "format_version": CARD_VERSION,
        "method": cfg["model"], "constructor_args": dict(cfg.get("model_args") or {}),
        "in_channels": int(method_cfg.get("in_channels", 1)), "method_config": method_cfg,
        "norm": [float(x) for x in method_state.get("norm", (0.0, 1.0))],
        "dataset": cfg["dataset"], "split": cfg.get("split") or "test", "train_split": cfg.get("train_split"),
        "grey": bool(cfg.get("grey", False)), "protocol": cfg["protocol"], "mode": cfg.get("mode"),
        "preset": cfg.get("preset"), "preset_overrides": dict(cfg.get("preset_overrides") or {}),
        "post": cfg.get("post"), "post_params": dict(cfg.get("post_params") or {}), "seed": cfg.get("seed"),
        "record_id": rec["run_id"], "code_version": rec.get("code_version"), "git_commit": rec["git"].get("commit"),
        "metrics": rec["metrics"]["aggregate"], "checkpoint_sha256": init.sha256,
        "grainbench_version": __version__,
    }
    blob = save(net, metadata={METADATA_KEY: json.dumps(card, sort_keys=True, default=str)})

    stem = path_component(stem or rec["run_id"], "weights name")
    out_dir = Path(out_dir)
    weights_path, card_path = out_dir / f"{stem}.safetensors", out_dir / f"{stem}.json"
    with atomic_write(weights_path, "wb") as fh:
        fh.write(blob)
    card = {**card, "weights_file": weights_path.name, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    with atomic_write(card_path, "w") as fh:
        json.dump(card, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return weights_path, card_path


def record_for(ref: str | os.PathLike, *, records_dir: Path, work_root: Path) -> tuple[Any, dict[str, Any]]:
    """The finished weights of run ``ref`` (an :class:`~grainbench.runner.InitFrom`, hash checked) and its record."""
    from .records import read_record
    from .runner import RunError, resolve_init_from

    init = resolve_init_from(ref, records_dir=records_dir, work_root=work_root)
    path = Path(ref)
    if path.is_file() and path.suffix.lower() == ".json":
        return init, read_record(path)
    found = sorted(Path(records_dir).glob(f"*/{init.run_id}.json")) if init.run_id else []
    if not found:
        raise RunError(f"export {ref}: no record under {records_dir} has these weights (sha256 {init.sha256[:12]}...); "
                       "export a run id or record file")
    return init, read_record(found[0])


# --------------------------------------------------------------------------- loading

def parse_weights_ref(ref: str, sha256: str | None = None) -> tuple[str, str | None]:
    """``URL#sha256=HEX`` -> (URL, hex); a plain path or URL with ``sha256`` given apart. Hashes lower-cased."""
    ref = str(ref)
    pinned = None
    if "#sha256=" in ref:
        ref, pinned = ref.split("#sha256=", 1)
    if pinned and sha256 and pinned.lower() != sha256.lower():
        raise WeightsError(f"{ref}: two different sha256 given ({pinned} in the URL, {sha256} apart)")
    digest = (pinned or sha256 or "").strip().lower() or None
    if digest is not None and not _HEX64.match(digest):
        raise WeightsError(f"{ref}: sha256 must be 64 hex digits, got {digest!r}")
    return ref, digest


def is_url(ref: str) -> bool:
    return str(ref).startswith(("http://", "https://"))


def resolve_weights(ref: str | os.PathLike, sha256: str | None = None, *, timeout: float = 60.0) -> ExternalWeights:
    """A weights file ready to load: downloaded (URLs must be pinned by sha256) and hash-checked, card read.

    Raises
    ------
    WeightsError
        A URL without a sha256, a download that fails, a hash mismatch (a
        downloaded file is deleted; a local file is left alone), a file that
        is not readable safetensors or has no grainbench card.
    """
    source, digest = parse_weights_ref(str(ref), sha256)
    if is_url(source):
        if digest is None:
            raise WeightsError(f"{source}: a weights URL must be pinned by its sha256 "
                               "(URL#sha256=HEX or --weights-sha256 HEX)")
        local = _download(source, digest, timeout)
    else:
        local = Path(source).expanduser()
        if not local.is_file():
            raise WeightsError(f"{local}: weights file not found")
        got = sha256_file(local)
        if digest is not None and got != digest:
            raise WeightsError(f"{local}: sha256 mismatch: expected {digest}, got {got}")
        digest = got
    card = read_card(local)
    return ExternalWeights(source=source, path=str(local.resolve()), sha256=digest, card=card)


def _download(url: str, digest: str, timeout: float) -> Path:
    import pooch
    import requests

    from .data.cache import cache_dir

    folder = cache_dir() / "weights"
    target = folder / f"{digest}.safetensors"
    if target.is_file() and sha256_file(target) == digest:
        return target
    try:
        got = pooch.retrieve(url, known_hash=f"sha256:{digest}", fname=target.name, path=folder,
                             downloader=pooch.HTTPDownloader(progressbar=False, timeout=timeout))
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise WeightsError(f"{url}: HTTP {status}") from None
    except requests.exceptions.RequestException as exc:
        raise WeightsError(f"{url}: download failed ({type(exc).__name__})") from None
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        from .data.fetch import _got_hash

        raise WeightsError(f"{url}: sha256 mismatch: expected {digest}, got {_got_hash(str(exc))}; "
                           "the downloaded file was deleted") from None
    return Path(got)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The model card stored in a grainbench safetensors file (its metadata), checked for the needed fields."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            names = list(fh.keys())
    except Exception as exc:  # SafetensorError, OSError: a truncated or foreign file
        raise WeightsError(f"{path}: not a readable safetensors file (truncated or not safetensors: "
                           f"{_first_line(exc)})") from None
    try:
        card = json.loads(meta[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        raise WeightsError(f"{path}: safetensors file without a grainbench model card "
                           "(export weights with `grainbench export RUN`)") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise WeightsError(f"{path}: not grainbench weights (card format {card.get('format')!r})"
                           if isinstance(card, dict) else f"{path}: model card is not a JSON object")
    if int(card.get("format_version", 0)) > CARD_VERSION:
        raise WeightsError(f"{path}: weights format {card['format_version']} is newer than this grainbench "
                           f"reads ({CARD_VERSION})")
    missing = [k for k in ("method", "in_channels", "dataset", "protocol") if k not in card]
    if missing:
        raise WeightsError(f"{path}: model card lacks {', '.join(missing)}")
    card["tensor_names"] = names
    return card


def read_tensors(path: str | os.PathLike) -> dict[str, Any]:
    """Every tensor of a safetensors file (CPU), a :class:`WeightsError` for a truncated or foreign file."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None


def apply_weights(method: Any, weights: ExternalWeights, name: str) -> Any:
    """Put ``weights`` into ``method`` (registry name ``name``): same method, input channels, tensor names, shapes.

    ``method`` must be built with the card's constructor arguments (and this
    data's channels); every mismatch is one :class:`WeightsError` line.
    """
    card = weights.card
    where = weights.source
    if card["method"] != name:
        raise WeightsError(f"{where}: weights of method {card['method']!r}, not {name!r}")
    if not hasattr(method, "net") or not hasattr(method, "load_state_dict"):
        raise WeightsError(f"{where}: method {name!r} has no network to load weights into")
    have = int(card["in_channels"])
    if have != int(getattr(method, "in_channels", 1)):
        raise WeightsError(f"{where}: weights take {have} image channel(s), the data has "
                           f"{method.in_channels} (use --grey for grey weights on colour data, or other weights)")
    _adopt_settings(method, card, where)
    tensors = read_tensors(weights.path)
    own = method.net.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        what = (f"lack {missing[:3]}" if missing else "") + (" and " if missing and extra else "") + \
            (f"have unknown {extra[:3]}" if extra else "")
        raise WeightsError(f"{where}: weights do not fit {name} {assignments(card.get('constructor_args'))}: they "
                           f"{what}")
    for key, value in own.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise WeightsError(f"{where}: weights do not fit {name}: {key} is {tuple(tensors[key].shape)} in the "
                               f"file, {tuple(value.shape)} here (other constructor arguments? the card says "
                               f"{card.get('constructor_args')})")
    try:
        method.load_state_dict({"net": tensors, "norm": card.get("norm", (0.0, 1.0)),
                                "preset": card.get("preset") or ""})
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: weights do not fit method {name!r} ({_first_line(exc)})") from None
    return method


def method_from_weights(weights: ExternalWeights, *, device: str | None = None) -> Any:
    """The method of a weights file, built from its card (constructor arguments, input channels) and loaded.

    For prediction outside a benchmark run (:func:`grainbench.volume_inference.predict_volume`).
    """
    from .methods import create_model

    card = weights.card
    args = {**(card.get("constructor_args") or {}), "in_channels": int(card["in_channels"])}
    if device is not None:
        args["device"] = device
    try:
        method = create_model(card["method"], **args)
    except TypeError as exc:
        raise WeightsError(f"{weights.source}: method {card['method']!r} does not take the card's arguments "
                           f"{assignments(args)} ({_first_line(exc)})") from None
    return apply_weights(method, weights, card["method"])


def _adopt_settings(method: Any, card: dict[str, Any], where: str) -> None:
    """Give ``method`` the network settings the weights were trained with (e.g. the width a preset chose),
    where the run left them unset (None); a setting the run chose differently is a :class:`WeightsError`.

    The same rule as loading a checkpoint (:meth:`grainbench.methods.TorchMethod.load`): the recorded
    method config rebuilds the network.
    """
    config = getattr(method, "_config", None)
    if not isinstance(config, dict):
        return
    trained = {k: v for k, v in (card.get("method_config") or {}).items() if k not in ("name", "context", "in_channels")}
    clash = {k: (v, config[k]) for k, v in trained.items() if config.get(k) is not None and config[k] != v}
    if clash:
        raise WeightsError(f"{where}: weights do not fit this run: trained with "
                           + ", ".join(f"{k}={a!r}, not {b!r}" for k, (a, b) in sorted(clash.items())))
    changed = {k: v for k, v in trained.items() if config.get(k) is None and v is not None}
    if changed:
        config.update(changed)
        method._net = None  # rebuilt for these settings on first use


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def assignments(values: dict | None) -> str:
    from .tables import assignments as _assignments

    text = _assignments(values)
    return f"({text})" if text else ""


def run_defaults(card: dict[str, Any]) -> dict[str, Any]:
    """What a run of these weights reproduces by default: the card's method, dataset, arguments and settings."""
    return {"model": card["method"], "dataset": card["dataset"], "model_args": dict(card.get("constructor_args") or {}),
            "preset": card.get("preset") or "quick", "overrides": dict(card.get("preset_overrides") or {}),
            "split": card.get("split") or "test", "grey": bool(card.get("grey", False)),
            "protocol": card.get("protocol"), "post": card.get("post"), "post_params": card.get("post_params") or {},
            "seed": card.get("seed") if card.get("seed") is not None else 0}


__all__ = ["CARD_FORMAT", "ExternalWeights", "WeightsError", "apply_weights", "export_weights", "method_from_weights",
           "parse_weights_ref", "read_card", "resolve_weights", "run_defaults"]
