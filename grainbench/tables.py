"""What every results table shares: newest-per-run, mean and spread, cells, Markdown escaping, degenerate rows.

Used by the leaderboards (:mod:`grainbench.leaderboard`), the tracking
tables (:mod:`grainbench.tracking.leaderboard`) and the run summary
(:func:`grainbench.runner.summary_table`), so none of them imports another.

**Degenerate predictions** (:func:`degenerate_reason`): a row whose mean
predicted grain count is 0 (every pixel boundary), or is more than
:data:`GRAIN_COUNT_FACTOR` times smaller or larger than the ground truth's
(e.g. no boundary at all: one grain), is flagged and ranked after every other
row, whatever its VI: under the gala convention an all-boundary map has VI 0.
"""

from __future__ import annotations

import html
import math

import pandas as pd

#: A prediction whose grain count is off from the truth's by more than this factor is degenerate.
GRAIN_COUNT_FACTOR = 4.0


def assignments(values: dict | None) -> str:
    """``{"width": 8, "loss": "cbw"}`` -> ``"loss=cbw, width=8"``: how labels show changed settings."""
    return ", ".join(f"{k}={v}" for k, v in sorted((values or {}).items()))


def post_label(name: str | None, params: dict | None) -> str:
    """How a row marks its post-processor: ``""`` for the protocol's own (or none recorded), else e.g.
    ``+ws`` or ``+ws(h=0.1)`` (parameters that differ from the defaults; an unknown name as ``+<name>``)."""
    from .errors import ConfigError
    from .postprocessors import DEFAULT_POST, get_postprocessor

    if not name or name == DEFAULT_POST:
        return ""
    try:
        return get_postprocessor(name, **(params or {})).label
    except ConfigError:  # a record from other code: show what it says
        return f"+{name}" + (f"({assignments(params)})" if params else "")


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


def md_cell(value: object) -> str:
    """Text safe inside one Markdown table cell: HTML escaped, ``|`` escaped, newlines as spaces."""
    text = html.escape(str(value), quote=False)
    text = " ".join(text.split())  # newlines, tabs and runs of blanks become one space
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("`", "\\`")


def degenerate_reason(grains_pred: float, grains_gt: float) -> str:
    """Why a prediction with these mean grain counts is degenerate, or ``""`` when it is not."""
    if grains_pred is None or grains_gt is None or pd.isna(grains_pred) or pd.isna(grains_gt):
        return ""
    if grains_pred <= 0:
        return "no grains"
    if grains_gt > 0 and not (1 / GRAIN_COUNT_FACTOR <= grains_pred / grains_gt <= GRAIN_COUNT_FACTOR):
        return f"{grains_pred:.0f} grains vs {grains_gt:.0f} true"
    return ""


def rank_rows(table: pd.DataFrame, metric: str, ascending: bool) -> pd.DataFrame:
    """Sort best first by ``metric``, degenerate rows (a ``flag`` column, see module doc) last.

    Adds ``flag`` when the table has ``grain_count_pred`` and ``grain_count_gt`` columns.
    """
    table = table.copy()
    if "grain_count_pred" in table and "grain_count_gt" in table:
        table["flag"] = [degenerate_reason(p, g) for p, g in zip(table["grain_count_pred"], table["grain_count_gt"])]
    else:
        table["flag"] = ""
    key = table[metric] if metric in table else pd.Series(math.nan, index=table.index)
    table["_degenerate"] = table["flag"] != ""
    table["_key"] = key if ascending else -key
    table = table.sort_values(["_degenerate", "_key"], kind="stable", na_position="last")
    return table.drop(columns=["_degenerate", "_key"]).reset_index(drop=True)
