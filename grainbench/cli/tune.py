"""``grainbench tune``: hyperparameter search with Ray Tune's ASHA scheduler (seed 004's two-step HPO)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from ..plugins import parse_assignments
from ..runner import RunError
from ._console import console, err_console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune", help="search hyperparameters with Ray Tune + ASHA; write the best settings for run --config",
        description="Sample settings from a search-space file, train one grainbench run per sample (a trial, scored "
                    "on val), let ASHA stop the trials whose validation loss lags after each epoch, and write the "
                    "best finished trial's settings as a file for `grainbench run --config`. Seed 004's two steps: "
                    "a study on --pseudo-labels, then a fine-tuning study --init-from its best checkpoint. Needs "
                    'the tune extra: pip install "grainbench[tune]".')
    p.add_argument("--model", required=True, help="one registry name or package.module:Class")
    p.add_argument("--dataset", required=True, help="registry name; trials are scored on its val split")
    p.add_argument("--space", required=True, type=Path, metavar="FILE",
                   help="search space, TOML or JSON: [set] preset fields and [model_arg] arguments, each a value "
                        "or one of {uniform, loguniform, randint, choice, grid} (see README)")
    p.add_argument("--samples", type=int, default=8, help="trials to sample (default 8; the paper ran 30)")
    p.add_argument("--study", help="name of the study (default <model>-<dataset>-<UTC time>)")
    p.add_argument("--preset", default="quick", help="base training preset (default quick)")
    p.add_argument("--seed", type=int, default=0, help="seed of every trial and of the settings drawn (default 0)")
    p.add_argument("--protocol", help="scoring protocol (default: the dataset's)")
    p.add_argument("--metric", help="val metric that picks the best trial (default: the protocol's primary, "
                                    "VI for boundaries, IoU for phases)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="fixed settings under the space (a settings file, e.g. an earlier study's best.toml)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="fixed preset field of every trial (repeatable; wins over --config, the space wins over it)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="fixed constructor argument (repeatable)")
    p.add_argument("--init-from", metavar="RUN_OR_CHECKPOINT",
                   help="fine-tuning study: every trial starts from these weights (step 2)")
    p.add_argument("--pseudo-labels", metavar="RUN_OR_CHECKPOINT",
                   help="train every trial on this run's predictions over the training images (step 1)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the trials run")
    p.add_argument("--cpus-per-trial", type=float, default=1, help="Ray CPUs (and torch threads) per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, help="Ray GPUs per trial (default 0; 1 on a GPU node)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the resources allow)")
    p.add_argument("--num-cpus", type=int, help="cores of the local Ray instance (default: all, or "
                                                "cpus-per-trial x max-concurrent)")
    p.add_argument("--address", help="join this Ray cluster (auto or HOST:PORT) instead of starting one")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped (default 1)")
    p.add_argument("--reduction-factor", type=float, default=2,
                   help="ASHA: keep the best 1/N of the trials at each rung (default 2)")
    p.add_argument("--root", type=Path, help="where studies go (default <runs>/tune)")
    p.add_argument("--records", type=Path, help="where --init-from / --pseudo-labels run ids are looked up "
                                                "(default <runs>/records)")
    p.add_argument("--workdir", type=Path, help="checkpoints of those runs (default $GRAINBENCH_RUNS or runs/)")
    p.set_defaults(func=run)


def _log(msg: str) -> None:
    """Progress lines to stderr (a module function: Ray pickles the study's callback by reference to it)."""
    err_console.print(escape(msg), highlight=False)


def run(args: argparse.Namespace) -> int:
    from ..runconfig import load_run_config
    from ..space import load_space
    from ..tune import run_study

    space = load_space(args.space)
    overrides, model_args = load_run_config(args.config) if args.config else ({}, {})
    overrides.update(parse_assignments(args.overrides, "--set", error=RunError))
    model_args.update(parse_assignments(args.model_arg, "--model-arg", error=RunError))
    result = run_study(
        args.model, args.dataset, space, samples=args.samples, study=args.study, preset=args.preset, seed=args.seed,
        protocol=args.protocol, overrides=overrides, model_args=model_args, init_from=args.init_from,
        pseudo_labels=args.pseudo_labels, records_dir=args.records, work_root=args.workdir, root=args.root,
        device=None if args.device == "auto" else args.device, metric=args.metric,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
        num_cpus=args.num_cpus, address=args.address, grace_period=args.grace_period,
        reduction_factor=args.reduction_factor, log=_log)
    best = result.best
    finished = sum(t.status == "finished" for t in result.trials)
    console.print(f"study {escape(result.study)}: {len(result.trials)} trial(s), {finished} finished, "
                  f"{len(result.stopped)} stopped early by ASHA", highlight=False)
    console.print(f"best trial {best.trial}: {result.metric} {best.score:.4f} on val; record "
                  f"{escape(str(best.record))}", highlight=False)
    console.print(f"best settings: {escape(str(result.best_config))} (grainbench run --config FILE)", highlight=False)
    if best.checkpoint:
        console.print(f"best checkpoint: {escape(best.checkpoint)} (fine-tune: --init-from it)", highlight=False)
    console.print(f"study summary: {escape(str(result.summary))}", highlight=False)
    return 0
