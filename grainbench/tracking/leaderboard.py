"""The tracking leaderboard of a dataset: tracker x boundary source, like seed 000 Tables 3-5.

Built from the tracking run records only (``<records>/<dataset>/tracking/*.json``)
and written atomically as ``<out>/<dataset>_tracking.md`` and ``.csv``. The
numbers printed in seed 000 are listed apart, marked "reported".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..document import Block, Bullets, Heading, Link, Para, TableBlock, Val, to_markdown
from ..io import atomic_write
from ..names import validate_name
from ..records import load_records
from ..tables import assignments, format_cell, mean_and_spread, newest
from .scoring import TRACKING_PROTOCOL

METRICS = ("vi", "vi_split", "vi_merge", "ari")

_SEED000 = "Ma et al. 2019 (WPU-Net; seed 000)"
#: (dataset, table, tracker, boundaries, vi, ari, duration_s) as printed in seed 000.
REPORTED: tuple[tuple[str, str, str, str, float, float, float | None], ...] = (
    ("potts_sim", "Table 3", "min_centroid", "ground-truth", 0.5798, 0.9160, 41.87),
    ("potts_sim", "Table 3", "max_overlap", "ground-truth", 0.5754, 0.9206, 42.97),
    ("potts_sim", "Table 3", "vgg13_bn", "ground-truth", 0.5832, 0.9192, 426.92),
    ("potts_sim", "Table 3", "densenet161", "ground-truth", 0.5124, 0.9391, 759.90),
    ("pure_iron", "Table 4", "min_centroid", "ground-truth", 0.5508, 0.8856, 1100.95),
    ("pure_iron", "Table 4", "max_overlap", "ground-truth", 0.6331, 0.8582, 1126.41),
    ("pure_iron", "Table 4", "vgg13_bn", "ground-truth", 0.5299, 0.8972, 7934.64),
    ("pure_iron", "Table 4", "densenet161", "ground-truth", 0.4829, 0.9131, 9228.82),
    ("pure_iron", "Table 5", "densenet161", "WPU-Net", 1.4785, 0.7577, None),
    ("pure_iron", "Table 5", "densenet161", "Fast-FineCut", 1.7517, 0.7050, None),
    ("pure_iron", "Table 5", "densenet161", "3D U-Net", 1.4864, 0.7405, None),
    ("pure_iron", "Table 5", "densenet161", "Attention U-Net", 1.6701, 0.7348, None),
    ("pure_iron", "Table 5", "densenet161", "U-Net", 1.7326, 0.6932, None),
    ("pure_iron", "Table 5", "densenet161", "UNet+BDCLSTM", 1.7363, 0.6841, None),
)

#: How seed 000 names the trackers.
PAPER_NAMES = {"min_centroid": "Min Centroid Dis", "max_overlap": "Max Overlap Area", "vgg13_bn": "Vgg13 bn",
               "densenet161": "Densenet161"}


def reported_tracking(dataset: str | None = None) -> pd.DataFrame:
    """The tracking numbers of seed 000 (one row per tracker and boundary source)."""
    table = pd.DataFrame(REPORTED, columns=["dataset", "table", "tracker", "boundaries", "vi", "ari", "duration_s"])
    table.insert(1, "paper", _SEED000)
    return table if dataset is None else table[table["dataset"] == dataset].reset_index(drop=True)


def _label(cfg: dict) -> str:
    args = cfg.get("model_args")
    return str(cfg["model"]) + (f" ({assignments(args)})" if args else "")


def _current_hashes(dataset: str) -> dict[str, str]:
    """What identifies the registry's current data of ``dataset`` (generator digest, version); {} if unknown."""
    from ..data import get_dataset
    from ..data.registry import dataset_hashes
    from ..errors import GrainbenchError

    try:
        get_dataset(dataset)
    except GrainbenchError:
        return {}
    return {k: v for k, v in dataset_hashes(dataset).items() if k in ("generated", "version")}


def collect_tracking(records_dir: str | os.PathLike, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per tracking record of ``dataset`` (the newest of repeated runs); and unreadable files.

    Records of another tracking protocol version, or of other data than the
    registry's current version of ``dataset`` (generator digest and
    ``version``), are left out.
    """
    folder = Path(records_dir) / validate_name(dataset, "dataset") / "tracking"
    records, bad = load_records(folder) if folder.exists() else ([], [])
    current = _current_hashes(dataset)
    rows = []
    for path, rec in records:
        if rec["protocol"].get("name") != TRACKING_PROTOCOL["name"]:
            continue
        # Only the current protocol on the current data: older versions are other numbers.
        hashes = rec.get("dataset", {}).get("hashes", {})
        if rec["protocol"].get("version") != TRACKING_PROTOCOL["version"] or any(
                hashes.get(k) != v for k, v in current.items()):
            continue
        cfg = rec["config"]
        rows.append({
            "dataset": cfg["dataset"], "split": cfg["split"],
            "protocol": f"{rec['protocol'].get('name')}@{rec['protocol'].get('version')}",
            "tracker": _label(cfg), "boundaries": (cfg.get("boundaries") or "ground-truth")
            + (f" [weights {cfg['boundary_weights_sha256'][:8]}]" if cfg.get("boundary_weights_sha256") else ""),
            "seed": cfg.get("seed"),
            "created": rec.get("created", ""), "device": rec.get("environment", {}).get("device", ""),
            "duration_s": rec.get("timings", {}).get("track_s", np.nan), "record": str(path),
            **{m: rec["metrics"]["aggregate"].get(m, np.nan) for m in METRICS},
        })
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs, bad
    key = ["dataset", "split", "protocol", "tracker", "boundaries", "seed"]
    return newest(runs, key).reset_index(drop=True), bad


def summarise_tracking(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (tracker, boundaries); lowest VI first."""
    out = mean_and_spread(runs, ["tracker", "boundaries"], [*METRICS, "duration_s"])
    devices = runs.groupby(["tracker", "boundaries"], sort=False)["device"].agg(lambda d: ", ".join(sorted(set(d))))
    out["device"] = devices.to_numpy()
    return out.sort_values("vi", kind="stable").reset_index(drop=True)


def tracking_blocks(dataset: str, runs: pd.DataFrame, reported: pd.DataFrame, out_dir: Path,
                    bad: list[str]) -> list[Block]:
    """The tracking page of one dataset as blocks (:mod:`grainbench.document`), for Markdown and HTML."""
    from ..site import record_page

    blocks: list[Block] = [
        Heading(1, ("Tracking leaderboard: ", Val(dataset))),
        Para(("Built by `grainbench track` from the tracking run records only; do not edit by hand.\n"
              f"3D reconstruction from 2D boundaries, protocol `{TRACKING_PROTOCOL['name']}@"
              f"{TRACKING_PROTOCOL['version']}`: 3D VI = split + merge (bits, lower is better) and ARI of the "
              "reconstructed label volume against the 3D ground truth. Duration = wall time of the tracking "
              "(2D grains, linking, relabelling) of the whole split, training excluded.",))]
    if runs.empty:
        blocks.append(Para(("No reproduced tracking runs yet.",)))
    for split, group in runs.groupby("split", sort=True) if not runs.empty else []:
        table = summarise_tracking(group)
        rows = []
        for i, row in table.iterrows():
            cells = [format_cell(row[c], row[f"{c}_std"], row["seeds"]) for c in METRICS]
            rows.append([str(i + 1), row["tracker"], row["boundaries"], str(row["seeds"]), *cells,
                         format_cell(row["duration_s"], row["duration_s_std"], row["seeds"], 2), row["device"],
                         [Link(str(k + 1), Path(os.path.relpath(p, out_dir)).as_posix(), record_page(p, out_dir))
                          for k, p in enumerate(row["records"])]])
        frame = pd.DataFrame(rows, columns=["#", "tracker", "boundaries", "seeds", "VI", "split", "merge", "ARI",
                                            "duration (s)", "device", "records"])
        blocks += [Heading(2, ("Reproduced: split `", Val(split), "`")), TableBlock(frame, kind="tracking")]
    if not reported.empty:
        blocks += [Heading(2, ("Reported in seed 000 (not reproduced here)",)),
                   Para(("As printed by Ma et al. 2019 on their data and hardware (their simulated stack is not "
                         "public; grainbench regenerates a Potts stack of the same size); shown for reference.",))]
        for table_name, group in reported.groupby("table", sort=True):
            rows = [[row["tracker"], PAPER_NAMES.get(row["tracker"], row["tracker"]), row["boundaries"],
                     f"{row['vi']:g}", f"{row['ari']:g}", "-" if pd.isna(row["duration_s"]) else f"{row['duration_s']:g}"]
                    for _, row in group.iterrows()]
            frame = pd.DataFrame(rows, columns=["tracker", "as printed", "boundaries", "VI", "ARI", "duration (s)"])
            blocks += [Heading(3, (Val(table_name), " (reported)")), TableBlock(frame, kind="reported")]
    if bad:
        blocks += [Heading(2, ("Records that could not be read",)), Bullets(list(bad))]
    return blocks


def tracking_csv(runs: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """Long CSV: one row per (record, metric) and per reported number, with a ``source`` column."""
    columns = ["source", "dataset", "split", "protocol", "tracker", "boundaries", "seed", "record", "metric",
               "value"]
    frames = []
    if not runs.empty:
        long = runs.melt(id_vars=["dataset", "split", "protocol", "tracker", "boundaries", "seed", "record"],
                         value_vars=[*METRICS, "duration_s"], var_name="metric", value_name="value")
        frames.append(long.dropna(subset=["value"]).assign(source="reproduced"))
    if not reported.empty:
        rep = reported.melt(id_vars=["dataset", "table", "tracker", "boundaries", "paper"],
                            value_vars=["vi", "ari", "duration_s"], var_name="metric", value_name="value")
        rep = rep.dropna(subset=["value"]).assign(source="reported", split=rep["table"], protocol="paper",
                                                  seed=np.nan, record=rep["paper"])
        frames.append(rep)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def build_tracking_leaderboard(records_dir: str | os.PathLike, out_dir: str | os.PathLike,
                               dataset: str) -> list[Path]:
    """Rebuild ``<out_dir>/<dataset>_tracking.md``, ``.csv`` and ``.html`` (and its record pages, and the
    site's ``index.html``) from the tracking records of ``dataset``."""
    from ..records import read_record
    from ..site import record_page, write_index, write_page, write_record_page

    out_dir = Path(out_dir)
    runs, bad = collect_tracking(records_dir, dataset)
    reported = reported_tracking(dataset)
    name = validate_name(dataset, "dataset")
    md_path, csv_path = out_dir / f"{name}_tracking.md", out_dir / f"{name}_tracking.csv"
    html_path = out_dir / f"{name}_tracking.html"
    blocks = tracking_blocks(dataset, runs, reported, out_dir, bad)
    with atomic_write(md_path, "w") as fh:
        fh.write(to_markdown(blocks))
    with atomic_write(csv_path, "w") as fh:
        tracking_csv(runs, reported).to_csv(fh, index=False)
    write_page(html_path, f"Tracking leaderboard: {dataset}", blocks, out_dir,
               extra_nav=[("2D leaderboard", out_dir / f"{name}.html")])
    for p in runs["record"] if not runs.empty else []:
        write_record_page(p, read_record(p), out_dir, record_page(p, out_dir), html_path)
    write_index(out_dir)
    return [md_path, csv_path, html_path]
