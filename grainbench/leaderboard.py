"""Leaderboards built from run records only: Markdown for reading, CSV for tools.

One table per (protocol, preset, scored split) per dataset, best first, each row linking
the records it averages. Fair rows only are ranked: a propagation method
scored with the true mask of slice z-1 (``oracle`` mode) goes to its own
"upper bound" table, never ranked with the others; the fair table holds its
``chain`` score. A degenerate prediction (no grains, or a grain count far
from the truth's; :mod:`grainbench.tables`) is flagged and ranked last.
Records made from a dirty work tree are marked (and refused with
``publish=True``). The numbers reported in the seed papers are listed apart,
marked "reported", never mixed into the reproduced ranking.

Every name that reaches a path was validated when its record was read
(:mod:`grainbench.names`), every file is written inside ``out_dir``, every
table cell is escaped, and pictures are linked from records only.
"""

from __future__ import annotations

import io
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .document import Block, Bullets, Heading, Image, Link, Para, TableBlock, Val, to_markdown
from .errors import GrainbenchError
from .io import atomic_write
from .names import validate_name
from .records import RecordError, load_records
from .site import figures_of, record_page, write_index, write_page, write_record_page
from .tables import assignments, format_cell, mean_and_spread, newest, post_label, rank_rows

__all__ = ["COLUMNS_BOUNDARY", "COLUMNS_GRAIN_SIZE", "COLUMNS_PHASE", "PRIMARY", "assignments",
           "build_leaderboards", "collect", "format_cell", "mean_and_spread", "newest", "reported_results", "summarise"]

COLUMNS_BOUNDARY = ("vi", "vi_split", "vi_merge", "ari", "map", "bf1", "bde", "dice")
#: Shown after :data:`COLUMNS_BOUNDARY` in boundary tables, where the records have them (records made
#: before the grain-size agreement existed show ``-``).
COLUMNS_GRAIN_SIZE = ("astm_g_error", "grain_count_ratio")
#: What the less obvious column names of a boundary table mean (printed under its heading).
COLUMN_NOTES = ("`dice`: Dice of boundary pixels (the ImageSegMetrics convention, Dice of grain pixels, is "
                "`dice_grain` in the extended metric group). `astm_g_error`: absolute difference of the ASTM E112 "
                "grain size numbers G of prediction and truth, from the mean chord on every row and column "
                "(NIST's chord rules; lower is better). `grain_count_ratio`: predicted over true grains "
                "(1 is best).")
COLUMNS_PHASE = ("accuracy", "iou", "dice", "bf1", "bde")
PRIMARY = {"boundary": ("vi", True), "phase": ("iou", False)}  # metric, ascending
#: Averaged beside the table columns to flag degenerate predictions.
GRAIN_COUNTS = ("grain_count_pred", "grain_count_gt")
ORACLE = "oracle"
DIRTY_MARK = "†"


def reported_results(dataset: str | None = None) -> pd.DataFrame:
    """The numbers the seed papers report (long format: one row per metric).

    A generated stand-in whose registry entry names ``reported_from`` (alzn_sim:
    alzn_xct) gets that dataset's rows, their paper labelled "on <dataset>":
    the paper's numbers beside the stand-in's, never as if measured on it.
    """
    text = resources.files("grainbench").joinpath("reported.csv").read_text(encoding="utf-8")
    table = pd.read_csv(io.StringIO(text), keep_default_na=False)
    if dataset is None:
        return table
    own = table[table["dataset"] == dataset]
    source = _reported_from(dataset)
    if source:
        other = table[table["dataset"] == source].assign(paper=lambda t: t["paper"] + f", on {source}")
        own = pd.concat([own, other])
    return own.reset_index(drop=True)


def _reported_from(dataset: str) -> str | None:
    from .data.registry import load_registry

    entry = load_registry().get(dataset)
    return None if entry is None else entry.reported_from


def collect(records: list[tuple[Path, dict]]) -> pd.DataFrame:
    """One row per record: identity, config and aggregate metrics.

    Model arguments, a post-processor other than the protocol's and preset
    overrides become part of the model and preset labels (``unet (width=8)``,
    ``unet +ws``, ``quick [epochs=2]``), so differently configured runs never
    share a row; rows with another post-processor are ranked in the same table. Settings a ``grainbench
    tune`` study chose (``config.settings_from``) name the study in the model label (``unet tuned:STUDY``)
    instead of the preset label, so tuned and untuned rows of one preset share a table. When a run was repeated (same model,
    configuration, mode and seed) only its newest record counts.
    """
    rows = []
    for path, rec in records:
        cfg = rec["config"]
        model = cfg["model"] if rec["kind"] == "run" else f"{cfg['model']} (submitted)"
        if cfg.get("model_args"):
            model += f" ({assignments(cfg['model_args'])})"
        if cfg.get("grey"):
            model += " grey"  # a colour set reduced to luma (--grey)
        if cfg.get("init_from"):  # a fine-tune: name the parent's dataset (or the checkpoint's hash)
            parent = cfg["init_from"].get("dataset") or cfg["init_from"]["sha256"][:8]
            model += f" ft:{parent}"
        if cfg.get("weights"):  # predicted with published weights, not trained here
            model += f" [weights {cfg['weights']['sha256'][:8]}]"
        overrides = dict(cfg.get("preset_overrides") or {})
        settings = cfg.get("settings_from") or {}
        study = (settings.get("source") or {}).get("study")
        if study:  # the settings a tuning study chose: named by the study, listed on the record's page
            model += f" tuned:{study}"
            chosen = settings.get("set") or {}
            overrides = {k: v for k, v in overrides.items() if k not in chosen or chosen[k] != v}
        label = post_label(cfg.get("post"), cfg.get("post_params"))
        if label:
            model += f" {label}"
        preset = cfg.get("preset") or ("submission" if rec["kind"] == "submission" else "-")
        if overrides:
            preset += f" [{assignments(overrides)}]"
        rows.append({
            "dataset": cfg["dataset"],
            "split": cfg.get("split") or "test",
            "protocol": f"{rec['protocol'].get('name')}@{rec['protocol'].get('version')}",
            "task": rec["protocol"].get("task", "boundary"),
            "preset": preset,
            "model": model,
            "mode": cfg.get("mode") or "-",
            "seed": cfg.get("seed"),
            "created": rec.get("created", ""),
            "record": str(path),
            "dirty": bool(rec["git"].get("dirty")),
            **rec["metrics"]["aggregate"],
        })
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    key = ["dataset", "split", "protocol", "preset", "model", "mode", "seed"]
    reruns = runs["seed"].notna()  # submissions have no seed: each one is its own entry
    return pd.concat([newest(runs[reruns], key), runs[~reruns].drop(columns="created")]).sort_index()


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (model, mode); best first by the primary metric.

    Degenerate rows (``flag`` not empty, see :func:`grainbench.tables.rank_rows`) come last;
    ``dirty`` tells whether any averaged record came from a dirty work tree.
    """
    task = runs["task"].iloc[0]
    metric, ascending = PRIMARY.get(task, PRIMARY["boundary"])
    columns = [c for c in (*_columns(task), *GRAIN_COUNTS) if c in runs]
    out = mean_and_spread(runs, ["model", "mode"], columns)
    if "dirty" in runs:
        out["dirty"] = runs.groupby(["model", "mode"], sort=False)["dirty"].any().to_numpy()
    return rank_rows(out, metric, ascending)


def _columns(task: str) -> tuple[str, ...]:
    """The metric columns of a table of ``task``."""
    return COLUMNS_PHASE if task == "phase" else (*COLUMNS_BOUNDARY, *COLUMNS_GRAIN_SIZE)


def split_merge_figures(dataset: str, runs: pd.DataFrame, records: dict[str, dict], out_dir: Path
                        ) -> dict[tuple[str, str, str], Path]:
    """Per-slice split vs merge VI of every method, one PNG per (protocol, preset, scored split) table.

    Written to ``<out_dir>/figures/<dataset>/<protocol>-<preset>[-<split>]-split-merge.png`` (the split
    named when it is not ``test``); returns the paths by (protocol, preset, split).
    """
    from .figures import plot_split_merge

    written: dict[tuple[str, str, str], Path] = {}
    if runs.empty or runs["task"].iloc[0] != "boundary":
        return written
    for (protocol, preset, split), group in runs.groupby(["protocol", "preset", "split"], sort=True):
        points: dict[str, list[tuple[float, float]]] = {}
        for _, row in group.iterrows():
            label = row["model"] if row["mode"] == "-" else f"{row['model']} ({row['mode']})"
            per_slice = records[row["record"]]["metrics"]["per_slice"]
            points.setdefault(label, []).extend(
                (float(r["vi_split"]), float(r["vi_merge"])) for r in per_slice if "vi_split" in r)
        points = {k: v for k, v in points.items() if v}
        if not points:
            continue
        name = re.sub(r"[^A-Za-z0-9_.@-]+", "_", f"{protocol}-{preset}" + (f"-{split}" if split != "test" else ""))
        path = _inside(out_dir, out_dir / "figures" / validate_name(dataset, "dataset") / f"{name}-split-merge.png")
        written[(protocol, preset, split)] = plot_split_merge(
            points, path, title=f"{dataset}: per-slice split vs merge ({protocol}, {preset}, {split})")
    return written


def _display(table: pd.DataFrame, task: str, out_dir: Path, *, ranked: bool,
             records: dict[str, dict] | None = None) -> pd.DataFrame:
    """The shown table of one summarised table: rank (``-`` for degenerate or unranked rows), formatted cells,
    record links (the record's page in HTML) and, for HTML only, the records' figures."""
    cols = [c for c in _columns(task) if c in table]
    rows, rank = [], 0
    for _, row in table.iterrows():
        flags = ([f"degenerate: {row['flag']}"] if row["flag"] else []) + \
            ([f"{DIRTY_MARK} dirty tree"] if row.get("dirty", False) else [])
        if ranked and not row["flag"]:
            rank += 1
        links = [Link(str(k + 1), _rel(p, out_dir), record_page(p, out_dir)) for k, p in enumerate(row["records"])]
        pictures = [Link(kind, _rel(pic, out_dir)) for p in row["records"]
                    for kind, pic in figures_of((records or {}).get(p), out_dir)]
        rows.append({"#": str(rank) if ranked and not row["flag"] else "-", "method": row["model"],
                     "mode": row["mode"], "seeds": str(row["seeds"]),
                     **{c: format_cell(row[c], row[f"{c}_std"], row["seeds"]) for c in cols},
                     "flag": "; ".join(flags), "records": links, "figures": pictures})
    # no row with a figure (e.g. phase runs, which draw no overlay): no empty column
    columns = ["#", "method", "mode", "seeds", *cols, "flag", "records",
               *(["figures"] if any(r["figures"] for r in rows) else [])]
    return pd.DataFrame(rows, columns=columns)


def _rel(path: str | os.PathLike, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def _inside(out_dir: Path, path: Path) -> Path:
    """``path`` if it lies inside ``out_dir``; a :class:`GrainbenchError` otherwise."""
    root = Path(out_dir).resolve()
    full = Path(path).resolve()
    if full != root and root not in full.parents:
        raise GrainbenchError(f"{path}: outside the output folder {out_dir}; not writing it")
    return path


def _overlays(runs: pd.DataFrame, records: dict[str, dict], out_dir: Path) -> list[tuple[str, Path]]:
    """The overlay pictures the records of ``runs`` name, that exist inside ``out_dir``."""
    found: dict[Path, str] = {}
    root = Path(out_dir).resolve()
    for _, row in runs.iterrows() if not runs.empty else []:
        rec = records.get(row["record"])
        picture = (rec or {}).get("figures", {}).get("overlay")
        if not picture:
            continue
        path = Path(picture).resolve()
        if path.is_file() and root in path.parents:
            mode = "" if row["mode"] == "-" else f" ({row['mode']})"
            found.setdefault(path, f"{row['model']}{mode}, {row['preset']}")
    return sorted(((label, path) for path, label in found.items()), key=lambda t: t[0])


def dataset_blocks(dataset: str, runs: pd.DataFrame, reported: pd.DataFrame, out_dir: Path,
                   bad: list[str], figures: dict[tuple[str, str, str], Path] | None = None,
                   records: dict[str, dict] | None = None) -> list[Block]:
    """The leaderboard page of one dataset as blocks (:mod:`grainbench.document`), for Markdown and HTML."""
    blocks: list[Block] = [
        Heading(1, ("Leaderboard: ", Val(dataset))),
        Para(("Built by `grainbench leaderboard build` from the run records only; do not edit by hand.\n"
              "Mean ± sample standard deviation over seeds."
              + ("" if not runs.empty and (runs["task"] == "phase").all()
                 else " VI = split + merge (bits, lower is better)."),))]
    if runs.empty:
        blocks.append(Para(("No reproduced runs yet.",)))
    # Scored splits never share a table: a val row is not ranked beside test rows.
    groups = runs.groupby(["protocol", "preset", "split"], sort=True) if not runs.empty else []
    for (protocol, preset, split), group in groups:
        task = group["task"].iloc[0]
        fair, oracle = group[group["mode"] != ORACLE], group[group["mode"] == ORACLE]
        heading = ("protocol `", Val(protocol), "`, preset `", Val(preset), "`, split `", Val(split), "`")
        if not fair.empty:
            blocks.append(Heading(2, ("Reproduced: ", *heading)))
            if task != "phase":
                blocks.append(Para((COLUMN_NOTES,)))
            blocks.append(TableBlock(_display(summarise(fair), task, out_dir, ranked=True, records=records),
                                     html_only=("figures",), kind="fair"))
        if not oracle.empty:
            blocks += [Heading(3, ("Upper bound: ground-truth previous slice (", *heading, "; not ranked)")),
                       Para(("Propagation methods given the true mask of slice z-1 at test time (`oracle` mode). "
                             "No real segmentation has it, so these rows are an upper bound, never ranked with the "
                             "fair rows above (which score the same methods in `chain` mode, on their own previous "
                             "prediction).",)),
                       TableBlock(_display(summarise(oracle), task, out_dir, ranked=False, records=records),
                                  html_only=("figures",), kind="oracle")]
        figure = (figures or {}).get((protocol, preset, split))
        if figure is not None:
            blocks.append(Image("per-slice split vs merge VI", _rel(figure, out_dir)))
    if not runs.empty and runs["dirty"].any():
        blocks.append(Para((f"{DIRTY_MARK} from a work tree with uncommitted changes: the numbers may not come "
                            "from the commit the record names. Published tables hold clean records only (see "
                            "README, Publishing).",)))
    overlays = _overlays(runs, records or {}, out_dir)
    if overlays:
        blocks += [Heading(2, ("Error overlays (middle test slice; TP cyan, FP yellow, FN red, 2 px tolerance)",)),
                   Bullets([Link(label, _rel(path, out_dir), quoted=False) for label, path in overlays])]
    if not reported.empty:
        blocks += [Heading(2, ("Reported in the papers (not reproduced here)",)),
                   Para(("Numbers as printed in the seed papers, on their data and protocols; shown for reference.",))]
        for (paper, table_name), group in reported.groupby(["paper", "table"], sort=False):
            wide = group.pivot_table(index=["method", "setting"], columns="metric", values="value", sort=False)
            rows = [{"method": method, "setting": setting or "-",
                     **{m: "" if pd.isna(row[m]) else f"{row[m]:g}" for m in wide.columns}}
                    for (method, setting), row in wide.iterrows()]
            blocks += [Heading(3, (Val(paper), ", ", Val(table_name), " (reported)")),
                       TableBlock(pd.DataFrame(rows, columns=["method", "setting", *wide.columns]), kind="reported")]
    if bad:
        blocks += [Heading(2, ("Records that could not be read",)), Bullets(list(bad))]
    return blocks


def build_leaderboards(records_dir: str | os.PathLike = "leaderboards/records",
                       out_dir: str | os.PathLike = "leaderboards",
                       datasets: list[str] | None = None, *, with_figures: bool = True, publish: bool = False
                       ) -> dict[str, list[Path]]:
    """Rebuild ``<out_dir>/<dataset>.md``, ``.csv`` and ``.html`` from the records under ``records_dir``.

    The HTML site (:mod:`grainbench.site`: ``index.html``, one page per
    dataset, one page per record under ``pages/``) is always written beside
    the Markdown, from the same blocks.

    With ``with_figures`` each table also gets its per-slice split vs merge
    plot under ``<out_dir>/figures/<dataset>/``; the overlays the records
    name are linked. Returns the files written per dataset. Corrupt or
    ill-typed records are listed in the Markdown (and skipped), never
    half-read. Records from a dirty work tree are marked; with ``publish``
    they are refused (:class:`RecordError` listing them) and nothing is written.
    """
    out_dir = Path(out_dir)
    records_dir = Path(records_dir)
    from .tracking.leaderboard import TRACKING_PROTOCOL, build_tracking_leaderboard

    for name in datasets or []:
        validate_name(name, "dataset")
    records, bad = load_records(records_dir) if records_dir.exists() else ([], [])
    if publish:
        dirty = [str(path) for path, rec in records if rec["git"].get("dirty") is not False]
        if dirty:
            raise RecordError(f"{len(dirty)} record(s) not from a clean commit, refused for publishing: "
                              + ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else ""))
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
        blocks = dataset_blocks(dataset, subset, reported, out_dir, bad, figures, by_path)
        md_path = _inside(out_dir, out_dir / f"{validate_name(dataset, 'dataset')}.md")
        csv_path = _inside(out_dir, out_dir / f"{dataset}.csv")
        html_path = _inside(out_dir, out_dir / f"{dataset}.html")
        with atomic_write(md_path, "w") as fh:
            fh.write(to_markdown(blocks))
        with atomic_write(csv_path, "w") as fh:
            _csv_table(subset, reported).to_csv(fh, index=False)
        nav = [("3D tracking", out_dir / f"{dataset}_tracking.html")] if dataset in tracked else []
        write_page(html_path, f"Leaderboard: {dataset}", blocks, out_dir, extra_nav=nav)
        pages = [write_record_page(p, by_path[p], out_dir, record_page(p, out_dir), html_path)
                 for p in (subset["record"] if not subset.empty else [])]
        for page in pages:
            _inside(out_dir, page)
        written[dataset] = [md_path, csv_path, html_path, *figures.values()]
        if dataset in tracked:
            written[dataset] += build_tracking_leaderboard(records_dir, out_dir, dataset)
    if written:
        written[sorted(written)[-1]].append(write_index(out_dir))
    return written


def _csv_table(runs: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """Long CSV: reproduced run rows (one per record) and reported paper rows, with a ``source`` column."""
    frames: list[pd.DataFrame] = []
    if not runs.empty:
        metric_cols = [c for c in runs.columns if c not in ("dataset", "split", "protocol", "task", "preset", "model",
                                                            "mode", "seed", "record", "dirty")]
        long = runs.melt(id_vars=["dataset", "split", "protocol", "preset", "model", "mode", "seed", "record"],
                         value_vars=metric_cols, var_name="metric", value_name="value").dropna(subset=["value"])
        long.insert(0, "source", "reproduced")
        frames.append(long)
    if not reported.empty:
        rep = reported.rename(columns={"paper": "record"}).assign(
            source="reported", split="test", protocol="paper", preset=reported["table"], mode=reported["setting"],
            seed=np.nan)
        frames.append(rep[["source", "dataset", "split", "protocol", "preset", "method", "mode", "seed", "record",
                           "metric", "value"]].rename(columns={"method": "model"}))
    if not frames:
        return pd.DataFrame(columns=["source", "dataset", "split", "protocol", "preset", "model", "mode", "seed",
                                     "record", "metric", "value"])
    return pd.concat(frames, ignore_index=True)

