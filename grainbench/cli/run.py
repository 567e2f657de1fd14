"""``grainbench run``: train (or load), predict, score, record and rank methods on a dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from ..leaderboard import (
    COLUMNS_BOUNDARY,
    COLUMNS_GRAIN_SIZE,
    COLUMNS_PHASE,
    build_leaderboards,
    format_cell,
)
from ..plugins import parse_assignments
from ..postprocessors import list_postprocessors
from ..errors import ConfigError
from ..executors import EXECUTORS, make_executor
from ..records import require_clean_tree
from ..runconfig import run_config_settings
from ..runner import RunError, run_many, summary_table
from ._console import console, err_console
from ._outputs import add_publish_argument, resolve_outputs
from .score import add_metrics_argument


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="train, predict, score and record methods on a dataset; rebuild its leaderboard",
        description="For every model and seed: get the dataset (download or generate; manual datasets must be "
                    "imported first), train with the preset (or load the finished checkpoint), predict the test "
                    "split, score it, write one run record per scoring mode and rebuild the leaderboard. Runs "
                    "whose records exist are skipped; an interrupted training resumes from its last epoch.",
    )
    p.add_argument("--model", help="comma-separated registry names or package.module:Class "
                                    "(required unless --weights names them)")
    p.add_argument("--dataset", help="registry name (see `grainbench data list`; default with --weights: theirs)")
    p.add_argument("--preset", default=None, help="training preset: quick or paper (default quick)")
    p.add_argument("--seed", type=_int_list, default=None, help="comma-separated seeds (default 0)")
    p.add_argument("--weights", metavar="PATH_OR_URL",
                   help="predict and score with published weights (a .safetensors file from `grainbench export`, "
                        "or an http(s) URL pinned as URL#sha256=HEX) instead of training; method, dataset, "
                        "arguments and settings default to the weights' model card; recorded with their hash")
    p.add_argument("--weights-sha256", metavar="HEX", help="sha256 the --weights file must have")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where networks and scoring run")
    p.add_argument("--protocol", help="scoring protocol (default: the dataset's)")
    p.add_argument("--mode", choices=("oracle", "chain"), action="append",
                   help="for propagation methods: score only this mode (repeatable; default both)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="constructor argument of every model, e.g. width=8 (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="change a preset field for this run, e.g. epochs=2 (repeatable; recorded)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="settings file (TOML or JSON): [set] preset fields and [model_arg] arguments, e.g. the "
                        "best.toml of grainbench tune; --set and --model-arg win over it")
    p.add_argument("--post", metavar="NAME",
                   help=f"post-processor of the probabilities for every model (default: each method's own, "
                        f"usually protocol; known: {', '.join(list_postprocessors())}); recorded, reuses checkpoints")
    p.add_argument("--post-param", action="append", metavar="KEY=VALUE",
                   help="parameter of the post-processor, e.g. h_distance=2 (repeatable; recorded)")
    p.add_argument("--records", type=Path, default=None,
                   help="where records go (default <runs>/records; see --publish)")
    p.add_argument("--leaderboards", type=Path, default=None,
                   help="where tables and figures go (default <runs>/leaderboards; see --publish)")
    p.add_argument("--workdir", type=Path, default=None, help="where checkpoints go (default $GRAINBENCH_RUNS or runs/)")
    p.add_argument("--split", default="test",
                   help="the split scored: test (default) or val, to hold the test files back (training then "
                        "keeps its last epoch's weights: nothing is selected on the scored split)")
    p.add_argument("--grey", action="store_true",
                   help="reduce a colour dataset's images to one grey (luma) channel for the methods (recorded)")
    p.add_argument("--init-from", metavar="RUN_OR_CHECKPOINT", default=None,
                   help="fine-tune: start training from these weights (a run id, its record, its work folder, "
                        "or a .pt checkpoint); a new run, recorded with its parent")
    p.add_argument("--pseudo-labels", metavar="RUN_OR_CHECKPOINT", default=None,
                   help="train on this run's post-processed predictions over the training images instead of "
                        "their labels (named like --init-from; validation and scoring keep the real labels)")
    p.add_argument("--tolerant", action="store_true",
                   help="also record seed 003's normalised-Gaussian tolerant precision/recall/F1 (sigma 3 px)")
    add_metrics_argument(p)
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where the runs execute: local (default, one after another in this process) or ray "
                        "(one Ray task per run, in parallel; records gathered here as each finishes)")
    p.add_argument("--address", default=None,
                   help="with --executor ray: the Ray cluster to join (auto, HOST:PORT); default: start a local one")
    p.add_argument("--cpus-per-run", type=float, default=None, metavar="N",
                   help="with --executor ray: CPUs each run reserves (default 1; its torch threads)")
    p.add_argument("--gpus-per-run", type=float, default=None, metavar="N",
                   help="with --executor ray: GPUs each run reserves (default 1 if the cluster has GPUs, else 0; "
                        "0.5 packs two runs on a GPU)")
    p.add_argument("--no-leaderboard", action="store_true", help="only write records")
    p.add_argument("--force", action="store_true",
                   help="run even when a record of this run (same config, dataset hashes, code version) exists")
    p.add_argument("--max-epochs", type=int, help=argparse.SUPPRESS)  # stop early: tests of resuming
    p.add_argument("--columns", type=_columns, default=None, metavar="M[,M...]|all",
                   help=f"metrics in the closing table (default {','.join(DEFAULT_COLUMNS['boundary'])}, or "
                        f"{','.join(DEFAULT_COLUMNS['phase'])} for phase datasets; 'all' for every one)")
    add_publish_argument(p)
    p.set_defaults(func=run)


# Few enough that the closing table keeps whole numbers in an 80-column terminal; --columns shows more.
DEFAULT_COLUMNS = {"boundary": ("vi", "vi_split", "vi_merge", "ari", "map", "bf1"),
                   "phase": ("iou", "dice", "bf1", "bde")}
ALL_COLUMNS = tuple(dict.fromkeys((*COLUMNS_BOUNDARY, *COLUMNS_GRAIN_SIZE, *COLUMNS_PHASE)))


def _columns(text: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    if names == ("all",):
        return ALL_COLUMNS
    unknown = [c for c in names if c not in ALL_COLUMNS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; "
                                         f"known: {', '.join(ALL_COLUMNS)} or all")
    return names


def apply_weights_defaults(args: argparse.Namespace) -> object | None:
    """Resolve ``--weights`` (download, hash, card) and fill the options left unset from its model card."""
    if args.weights is None:
        if args.weights_sha256:
            raise RunError("--weights-sha256 needs --weights")
        if args.model is None or args.dataset is None:
            raise RunError("--model and --dataset are required (or --weights, whose model card names them)")
        args.preset, args.seed = args.preset or "quick", args.seed or [0]
        return None
    from ..weights import resolve_weights, run_defaults

    weights = resolve_weights(args.weights, args.weights_sha256)
    card = run_defaults(weights.card)
    args.model = args.model or card["model"]
    args.dataset = args.dataset or card["dataset"]
    args.preset = args.preset or card["preset"]
    args.seed = args.seed or [card["seed"]]
    args.protocol = args.protocol or card["protocol"]
    if args.model_arg is None:
        args.model_arg = [f"{k}={json.dumps(v)}" for k, v in card["model_args"].items()]
    if args.overrides is None:
        args.overrides = [f"{k}={json.dumps(v)}" for k, v in card["overrides"].items()]
    if args.post is None and card["post"]:
        args.post = card["post"]
        if args.post_param is None:
            args.post_param = [f"{k}={json.dumps(v)}" for k, v in card["post_params"].items()]
    if args.split == "test" and card["split"] != "test":
        args.split = card["split"]
    args.grey = args.grey or card["grey"]
    return weights


def run(args: argparse.Namespace) -> int:
    resolve_outputs(args)
    if args.publish:
        require_clean_tree("grainbench run --publish")
    weights = apply_weights_defaults(args)
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not models:
        raise RunError("--model names no model")
    if not args.seed:
        raise RunError("--seed names no seed")
    device = None if args.device == "auto" else args.device
    executor = make_executor(args.executor, address=args.address, cpus_per_run=args.cpus_per_run,
                             gpus_per_run=args.gpus_per_run)
    figures = None if args.no_leaderboard else args.leaderboards / "figures"
    settings_from = run_config_settings(args.config) if args.config else None
    overrides = dict(settings_from["set"]) if settings_from else {}
    model_args = dict(settings_from["model_arg"]) if settings_from else {}
    overrides.update(parse_assignments(args.overrides, "--set", error=RunError))
    model_args.update(parse_assignments(args.model_arg, "--model-arg", error=RunError))
    outcomes = run_many(
        models, args.dataset, args.seed, preset=args.preset, protocol=args.protocol,
        modes=tuple(args.mode) if args.mode else None,
        model_args=model_args, overrides=overrides, pseudo_labels=args.pseudo_labels,
        records_dir=args.records, work_root=args.workdir,
        device=device, figures_dir=figures, max_epochs=args.max_epochs, tolerant=args.tolerant, force=args.force,
        metrics=args.metrics, split=args.split, init_from=args.init_from, grey=args.grey,
        post=args.post, post_params=parse_assignments(args.post_param, "--post-param", error=ConfigError),
        executor=executor, weights=weights, settings_from=settings_from, log=lambda msg: err_console.print(escape(msg), highlight=False))
    for o in outcomes:
        for path in o.records:
            console.print(f"record ({o.status}): {escape(str(path))}", highlight=False)
    interrupted = [o for o in outcomes if o.status == "interrupted"]
    failed = [o for o in outcomes if o.status == "failed"]
    table = summary_table(outcomes)
    if not table.empty:
        scored = "" if args.split == "test" else f" (scored on {args.split})"
        console.print(summary_renderable(table, f"{args.dataset}{scored}: {', '.join(models)} (preset {args.preset}, "
                                                f"seeds {','.join(map(str, args.seed))})", args.columns))
    if not args.no_leaderboard:
        for path in build_leaderboards(args.records, args.leaderboards, [args.dataset],
                                       publish=args.publish)[args.dataset]:
            console.print(f"leaderboard: {escape(str(path))}", highlight=False)
    for o in failed:
        err_console.print(f"[red]failed:[/] {escape(o.spec.model)} seed {o.spec.seed}: {escape(o.error)}",
                          highlight=False, soft_wrap=True)
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(outcomes)} run(s) failed[/]; the others are recorded; "
                          "run the same command again to retry them (finished runs are skipped)")
    if interrupted:
        err_console.print(f"[yellow]{len(interrupted)} run(s) stopped before the end of training; "
                          "run the same command again to resume[/]")
    return 1 if failed else 3 if interrupted else 0


HEADERS = {"vi": "VI", "vi_split": "VI\nsplit", "vi_merge": "VI\nmerge", "ari": "ARI", "map": "mAP", "bf1": "BF1",
           "bde": "BDE", "dice": "Dice", "accuracy": "acc.", "iou": "IoU", "astm_g_error": "ASTM\nG err.",
           "grain_count_ratio": "grains\npred/gt"}


def summary_renderable(table, title: str, columns: tuple[str, ...] | None = None) -> Table:
    """The closing table: one row per (model, mode), mean and ± std over seeds of ``columns``.

    Sized for an 80-column terminal: headers wrap at spaces, ``± std`` sits
    under its mean, and numbers never wrap or end in an ellipsis.
    """
    columns = columns or DEFAULT_COLUMNS["boundary" if "vi" in table else "phase"]
    cols = [c for c in columns if c in table]
    out = Table(title=escape(title), header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                show_edge=False, collapse_padding=True)
    out.add_column("method", overflow="fold", min_width=9)
    out.add_column("mode", no_wrap=True, min_width=6)
    out.add_column("seeds", justify="right", no_wrap=True)
    for c in cols:
        out.add_column(HEADERS.get(c, c), justify="right", no_wrap=True)
    # Ranked like the leaderboard: rows come best-first, degenerate and oracle rows last and marked.
    notes = [f"degenerate: {row['flag']}" if row.get("flag") else ("upper bound" if row["mode"] == "oracle" else "")
             for _, row in table.iterrows()]
    if any(notes):
        out.add_column("note", overflow="fold")
    for note, (_, row) in zip(notes, table.iterrows()):
        cells = [format_cell(row[c], row[f"{c}_std"], row["seeds"]).replace(" ± ", "\n±") for c in cols]
        extra = [escape(note)] if any(notes) else []
        out.add_row(escape(row["model"]), row["mode"], str(row["seeds"]), *cells, *extra)
    return out
