"""`redraft rm train`, `redraft dpo train` and `redraft rlhf`.

Each command reads its config (defaults in :mod:`redraft.rlhf.config` <- ``--config`` YAML <-
``--set`` overrides), writes into ``<run.output_dir>/<run.name>/`` and ends with ``result.json``.
Heavy imports happen inside the commands so ``redraft --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

rm_app = typer.Typer(
    help="Reward models: a scalar head on a causal LM, trained on preference pairs.", no_args_is_help=True
)
dpo_app = typer.Typer(help="DPO: train a policy directly on preference pairs.", no_args_is_help=True)
console = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file, merged over the defaults.")
]


def _set_option(example: str):
    """The --set option, its help showing ``example``, a key of the command's own config."""
    return Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help=f"Override one key, e.g. --set {example} (repeatable; values parsed as YAML)."
        ),
    ]


RMSetOption = _set_option("reward_model.train.max_steps=200")
DPOSetOption = _set_option("dpo.beta=0.2")
RLHFSetOption = _set_option("rlhf.rounds=2")
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Run name (sets run.name; default: reward_model, dpo or rlhf, the command's): outputs go to "
        "<run.output_dir>/<name>/.",
    ),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="HF checkpoint folder or Hub id to start from (sets model.path).")
]
PairsOption = Annotated[
    str | None, typer.Option("--pairs", help="pairs.jsonl from the feedback export (sets pairs.train_path).")
]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Delete an existing run folder of the same name first.")
]


def _load(cls, config: Path | None, overrides: list[str] | None, name: str | None, **keys: str | None):
    from redraft.config import load_config

    sets = list(overrides or [])
    if name:
        sets.append(f"run.name={name}")
    sets += [f"{key}={value}" for key, value in keys.items() if value is not None]
    return load_config(cls, config, sets)


def _say(message: str) -> None:
    from redraft.training.logging import print_once

    print_once(console, message)


@rm_app.command("train")
def rm_train(
    config: ConfigOption = None,
    set_: RMSetOption = None,
    name: NameOption = None,
    model: ModelOption = None,
    pairs: PairsOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a reward model (Bradley–Terry) and report held-out pairwise accuracy.

    Example: redraft rm train --model runs/sft/model --pairs pairs.jsonl --set reward_model.head=classifier \
(outputs in runs/reward_model/)
    """
    from redraft.rlhf.config import RewardModelConfig
    from redraft.rlhf.stages import run_reward_model

    cfg = _load(RewardModelConfig, config, set_, name, **{"model.path": model, "pairs.train_path": pairs})
    result = run_reward_model(cfg, resume, overwrite)
    accuracy = f", held-out pairwise accuracy {100 * result['val_accuracy']:.1f}%" if "val_accuracy" in result else ""
    _say(
        f"[green]done[/green]: reward model at {result['model_dir']} ({result['train_pairs']} training pairs{accuracy})"
    )


@dpo_app.command("train")
def dpo_train(
    config: ConfigOption = None,
    set_: DPOSetOption = None,
    name: NameOption = None,
    model: ModelOption = None,
    pairs: PairsOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """DPO of --model on preference pairs against a frozen copy of it.

    Example: redraft dpo train --model runs/sft/model --pairs pairs.jsonl --set dpo.beta=0.1 (outputs in runs/dpo/)
    """
    from redraft.rlhf.config import DPOConfig
    from redraft.rlhf.stages import run_dpo

    cfg = _load(DPOConfig, config, set_, name, **{"model.path": model, "pairs.train_path": pairs})
    result = run_dpo(cfg, resume, overwrite)
    _say(f"[green]done[/green]: policy at {result['model_dir']}")


CollectOption = Annotated[
    str | None,
    typer.Option(
        "--collect",
        help=(
            "Who labels each round: 'simulated' (in-process) or 'app' (the feedback web app, over HTTP); "
            "sets rlhf.collect."
        ),
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="With --collect app: people label in the browser (`redraft feedback serve`); wait for every item.",
    ),
]


def rlhf(
    config: ConfigOption = None,
    set_: RLHFSetOption = None,
    name: NameOption = None,
    model: ModelOption = None,
    collect: CollectOption = None,
    wait: WaitOption = False,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """RLHF rounds: sample -> collect preferences (simulated, or the feedback app) -> reward model + PPO (or DPO) \
-> evaluate.

    Example: redraft rlhf --model runs/sft/model --set rlhf.method=dpo --set rlhf.rounds=2 (outputs in runs/rlhf/)
    """
    from redraft.rlhf.config import RLHFConfig
    from redraft.rlhf.loop import run_rlhf
    from redraft.run_folder import start_run_dir

    keys = {"model.path": model, "rlhf.collect": collect, "rlhf.app.wait": "true" if wait else None}
    cfg = _load(RLHFConfig, config, set_, name, **keys)
    start_run_dir(cfg.run.directory, cfg, resume, overwrite)
    summary = run_rlhf(cfg, resume=resume)
    start = summary["start"]["test_accuracy"]
    console.print(f"start: greedy test accuracy {100 * start:.1f}%")
    for index, result in enumerate(summary["rounds"], start=1):
        evaluation = result["eval"]
        rm = result.get("reward_model", {}).get("val_accuracy")
        rm_text = f", reward model held-out accuracy {100 * rm:.1f}%" if rm is not None else ""
        console.print(
            f"round {index} ({result['method']}): greedy test accuracy {100 * evaluation['test_accuracy']:.1f}% "
            f"± {100 * evaluation['test_accuracy_ci95']:.1f}, "
            f"KL to the round's start {evaluation.get('kl', 0.0):.3f}{rm_text}"
        )
