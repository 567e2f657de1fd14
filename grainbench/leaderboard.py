"""Leaderboards built from run records only: Markdown for reading, CSV for tools.

One table per (protocol, preset) per dataset, best first, each row linking
the records it averages; the numbers reported in the seed papers are listed
apart, marked "reported", never mixed into the reproduced ranking.
"""

from __future__ import annotations

import io
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_write
from .records import load_records

COLUMNS_BOUNDARY = ("vi", "vi_split", "vi_merge", "ari", "map", "bf1", "bde", "dice")
COLUMNS_PHASE = ("accuracy", "iou", "dice", "bf1", "bde")
PRIMARY = {"boundary": ("vi", True), "phase": ("iou", False)}  # metric, ascending


def reported_results(dataset: str | None = None) -> pd.DataFrame:
    """The numbers the seed papers report (long format: one row per metric)."""
    text = resources.files("grainbench").joinpath("reported.csv").read_text(encoding="utf-8")
    table = pd.read_csv(io.StringIO(text), keep_default_na=False)
    return table if dataset is None else table[table["dataset"] == dataset].reset_index(drop=True)


def assignments(values: dict | None) -> str:
    """``{"width": 8, "loss": "cbw"}`` -> ``"loss=cbw, width=8"``: how labels show changed settings."""
    return ", ".join(f"{k}={v}" for k, v in sorted((values or {}).items()))


def newest(runs: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Only the newest row (by ``created``) of each ``key``, in the original order, without ``created``."""
    latest = runs.sort_values("created", kind="stable").drop_duplicates(key, keep="last")
    return latest.sort_index().drop(columns="created")


def mean_and_spread(runs: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group of ``by``: the mean of ``columns``, their sample std (``<c>_std``), ``seeds`` and ``records``."""
    grouped = runs.groupby(by, sort=False)
    out = grouped[columns].mean()
    std = grouped[columns].std(ddof=1).fillna(0.0)
    for c in columns:
        out[f"{c}_std"] = std[c]
    out["seeds"] = grouped.size()
    out["records"] = grouped["record"].apply(list)
    return out.reset_index()


def format_cell(mean: float, std: float, seeds: int, digits: int = 4) -> str:
    """``mean`` alone for one seed, ``mean ± std`` for several, ``-`` for a missing value."""
    if pd.isna(mean):
        return "-"
    return f"{mean:.{digits}f}" if seeds < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def collect(records: list[tuple[Path, dict]]) -> pd.DataFrame:
    """One row per record: identity, config and aggregate metrics.

    Model arguments and preset overrides become part of the model and preset
    labels (``unet (width=8)``, ``quick [epochs=2]``), so differently
    configured runs never share a row. When a run was repeated (same model,
    configuration, mode and seed) only its newest record counts.
    """
    rows = []
    for path, rec in records:
        cfg = rec["config"]
        model = cfg["model"] if rec["kind"] == "run" else f"{cfg['model']} (submitted)"
        if cfg.get("model_args"):
            model += f" ({assignments(cfg['model_args'])})"
        preset = cfg.get("preset") or ("submission" if rec["kind"] == "submission" else "-")
        if cfg.get("preset_overrides"):
            preset += f" [{assignments(cfg['preset_overrides'])}]"
        rows.append({
            "dataset": cfg["dataset"],
            "protocol": f"{rec['protocol'].get('name')}@{rec['protocol'].get('version')}",
            "task": rec["protocol"].get("task", "boundary"),
            "preset": preset,
            "model": model,
            "mode": cfg.get("mode") or "-",
            "seed": cfg.get("seed"),
            "created": rec.get("created", ""),
            "record": str(path),
            **rec["metrics"]["aggregate"],
        })
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    key = ["dataset", "protocol", "preset", "model", "mode", "seed"]
    reruns = runs["seed"].notna()  # submissions have no seed: each one is its own entry
    return pd.concat([newest(runs[reruns], key), runs[~reruns].drop(columns="created")]).sort_index()


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (model, mode); best first by the primary metric."""
    task = runs["task"].iloc[0]
    metric, ascending = PRIMARY.get(task, PRIMARY["boundary"])
    columns = [c for c in (COLUMNS_PHASE if task == "phase" else COLUMNS_BOUNDARY) if c in runs]
    out = mean_and_spread(runs, ["model", "mode"], columns)
    return out.sort_values(metric, ascending=ascending, kind="stable").reset_index(drop=True)


def split_merge_figures(dataset: str, runs: pd.DataFrame, records: dict[str, dict], out_dir: Path
                        ) -> dict[tuple[str, str], Path]:
    """Per-slice split vs merge VI of every method, one PNG per (protocol, preset) table.

    Written to ``<out_dir>/figures/<dataset>/<protocol>-<preset>-split-merge.png``;
    returns the paths by (protocol, preset).
    """
    from .figures import plot_split_merge

    written: dict[tuple[str, str], Path] = {}
    if runs.empty or runs["task"].iloc[0] != "boundary":
        return written
    for (protocol, preset), group in runs.groupby(["protocol", "preset"], sort=True):
        points: dict[str, list[tuple[float, float]]] = {}
        for _, row in group.iterrows():
            label = row["model"] if row["mode"] == "-" else f"{row['model']} ({row['mode']})"
            per_slice = records[row["record"]]["metrics"]["per_slice"]
            points.setdefault(label, []).extend(
                (float(r["vi_split"]), float(r["vi_merge"])) for r in per_slice if "vi_split" in r)
        points = {k: v for k, v in points.items() if v}
        if not points:
            continue
        name = re.sub(r"[^A-Za-z0-9_.@-]+", "_", f"{protocol}-{preset}")
        path = out_dir / "figures" / dataset / f"{name}-split-merge.png"
        written[(protocol, preset)] = plot_split_merge(
            points, path, title=f"{dataset}: per-slice split vs merge ({protocol}, {preset})")
    return written


def render_markdown(dataset: str, runs: pd.DataFrame, reported: pd.DataFrame, out_dir: Path,
                    bad: list[str], figures: dict[tuple[str, str], Path] | None = None) -> str:
    lines = [f"# Leaderboard: {dataset}", "",
             "Built by `grainbench leaderboard build` from the run records only; do not edit by hand.",
             "Mean ± sample standard deviation over seeds. VI = split + merge (bits, lower is better).", ""]
    if runs.empty:
        lines += ["No reproduced runs yet.", ""]
    groups = runs.groupby(["protocol", "preset"], sort=True) if not runs.empty else []
    for (protocol, preset), group in groups:
        table = summarise(group)
        task = group["task"].iloc[0]
        cols = [c for c in (COLUMNS_PHASE if task == "phase" else COLUMNS_BOUNDARY) if c in table]
        lines += [f"## Reproduced: protocol `{protocol}`, preset `{preset}`", ""]
        lines.append("| # | method | mode | seeds | " + " | ".join(cols) + " | records |")
        lines.append("|---|---|---|---|" + "---|" * len(cols) + "---|")
        for i, row in table.iterrows():
            links = ", ".join(f"[{k + 1}]({Path(os.path.relpath(p, out_dir)).as_posix()})"
                              for k, p in enumerate(row["records"]))
            cells = [format_cell(row[c], row[f"{c}_std"], row["seeds"]) for c in cols]
            lines.append(f"| {i + 1} | {row['model']} | {row['mode']} | {row['seeds']} | " + " | ".join(cells)
                         + f" | {links} |")
        lines.append("")
        figure = (figures or {}).get((protocol, preset))
        if figure is not None:
            rel = Path(os.path.relpath(figure, out_dir)).as_posix()
            lines += [f"![per-slice split vs merge VI]({rel})", ""]
    overlays = sorted((out_dir / "figures" / dataset).glob("*-overlay.png"))
    if overlays:
        lines += ["## Error overlays (middle test slice; TP cyan, FP yellow, FN red, 2 px tolerance)", ""]
        for path in overlays:
            rel = Path(os.path.relpath(path, out_dir)).as_posix()
            lines.append(f"- [{path.stem.removesuffix('-overlay')}]({rel})")
        lines.append("")
    if not reported.empty:
        lines += ["## Reported in the papers (not reproduced here)", "",
                  "Numbers as printed in the seed papers, on their data and protocols; shown for reference.", ""]
        for (paper, table_name), group in reported.groupby(["paper", "table"], sort=False):
            wide = group.pivot_table(index=["method", "setting"], columns="metric", values="value", sort=False)
            metrics = list(wide.columns)
            lines += [f"### {paper}, {table_name} (reported)", ""]
            lines.append("| method | setting | " + " | ".join(metrics) + " |")
            lines.append("|---|---|" + "---|" * len(metrics))
            for (method, setting), row in wide.iterrows():
                cells = ["" if pd.isna(row[m]) else f"{row[m]:g}" for m in metrics]
                lines.append(f"| {method} | {setting or '-'} | " + " | ".join(cells) + " |")
            lines.append("")
    if bad:
        lines += ["## Records that could not be read", ""] + [f"- {b}" for b in bad] + [""]
    return "\n".join(lines)


def build_leaderboards(records_dir: str | os.PathLike = "leaderboards/records",
                       out_dir: str | os.PathLike = "leaderboards",
                       datasets: list[str] | None = None, *, with_figures: bool = True
                       ) -> dict[str, list[Path]]:
    """Rebuild ``<out_dir>/<dataset>.md`` and ``.csv`` from the records under ``records_dir``.

    With ``with_figures`` each table also gets its per-slice split vs merge
    plot under ``<out_dir>/figures/<dataset>/``; overlays the runner left
    there are linked. Returns the files written per dataset. Corrupt records
    are listed in the Markdown (and skipped), never half-read.
    """
    out_dir = Path(out_dir)
    records_dir = Path(records_dir)
    from .tracking.leaderboard import TRACKING_PROTOCOL, build_tracking_leaderboard

    records, bad = load_records(records_dir) if records_dir.exists() else ([], [])
    # 3D tracking records get their own tables (<dataset>_tracking.md), tracker x boundary source.
    is_tracking = [rec["protocol"].get("name") == TRACKING_PROTOCOL["name"] for _, rec in records]
    tracked = {rec["config"]["dataset"] for (_, rec), t in zip(records, is_tracking) if t}
    records = [r for r, t in zip(records, is_tracking) if not t]
    runs = collect(records)
    by_path = {str(path): rec for path, rec in records}
    names = set(datasets or [])
    if not datasets:
        names |= set(runs["dataset"]) if not runs.empty else set()
        names |= tracked
    written: dict[str, list[Path]] = {}
    for dataset in sorted(names):
        subset = runs[runs["dataset"] == dataset] if not runs.empty else runs
        reported = reported_results(dataset)
        figures = split_merge_figures(dataset, subset, by_path, out_dir) if with_figures else {}
        md = render_markdown(dataset, subset, reported, out_dir, bad, figures)
        md_path, csv_path = out_dir / f"{dataset}.md", out_dir / f"{dataset}.csv"
        with atomic_write(md_path, "w") as fh:
            fh.write(md)
        with atomic_write(csv_path, "w") as fh:
            _csv_table(subset, reported).to_csv(fh, index=False)
        written[dataset] = [md_path, csv_path, *figures.values()]
        if dataset in tracked:
            written[dataset] += build_tracking_leaderboard(records_dir, out_dir, dataset)
    return written


def _csv_table(runs: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """Long CSV: reproduced run rows (one per record) and reported paper rows, with a ``source`` column."""
    frames: list[pd.DataFrame] = []
    if not runs.empty:
        metric_cols = [c for c in runs.columns if c not in ("dataset", "protocol", "task", "preset", "model", "mode",
                                                            "seed", "record")]
        long = runs.melt(id_vars=["dataset", "protocol", "preset", "model", "mode", "seed", "record"],
                         value_vars=metric_cols, var_name="metric", value_name="value").dropna(subset=["value"])
        long.insert(0, "source", "reproduced")
        frames.append(long)
    if not reported.empty:
        rep = reported.rename(columns={"paper": "record"}).assign(
            source="reported", protocol="paper", preset=reported["table"], mode=reported["setting"], seed=np.nan)
        frames.append(rep[["source", "dataset", "protocol", "preset", "method", "mode", "seed", "record", "metric",
                           "value"]].rename(columns={"method": "model"}))
    if not frames:
        return pd.DataFrame(columns=["source", "dataset", "protocol", "preset", "model", "mode", "seed", "record",
                                     "metric", "value"])
    return pd.concat(frames, ignore_index=True)

