"""`redraft config show` and `redraft config reference`: every command's config, its values and descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from redraft.cli.common import ConfigOption, say, set_option

config_app = typer.Typer(
    help="Inspect the configs: effective values, what each key means, the reference.", no_args_is_help=True
)
SetOption = set_option("rl.kl_coef=0.05")  # `config show`: a key of its default stage, run


# `config show NAME` and the config reference: NAME -> (the command that reads the config, what it does).
CONFIGS: dict[str, tuple[str, str]] = {
    "run": (
        "redraft run",
        "The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> SCoRe -> report. "
        "Its defaults are the code's with src/redraft/configs/run.yaml over them.",
    ),
    "pretrain": (
        "redraft pretrain",
        "Train a tokenizer (unless one is given) and pretrain a causal LM on the task corpus.",
    ),
    "sft": ("redraft sft", "Supervised fine-tuning of model.path, loss on completion tokens only."),
    "rl": ("redraft rl", "RL of model.path against the task's reward (GRPO, RLOO, REINFORCE++, PPO)."),
    "score": (
        "redraft score",
        "SCoRe self-correction (Pair-SFT -> Stage I -> Stage II) and its baselines, from "
        "the single-attempt SFT model model.path.",
    ),
    "eval": (
        "redraft eval",
        "Greedy accuracy and pass@k of model.path (or, with --self-correct, its self-correction metrics).",
    ),
    "generate": ("redraft generate", "Sample completions of --model for prompts."),
    "rm": ("redraft rm train", "A Bradley–Terry reward model from preference pairs."),
    "dpo": ("redraft dpo train", "DPO of model.path on preference pairs."),
    "rlhf": ("redraft rlhf", "Rounds of sample -> collect preferences -> reward model + PPO, or DPO -> evaluate."),
    "feedback": ("redraft feedback", "The feedback store, its queue, the labelling web app and `feedback sample`."),
}


def load_named_config(name: str, config: Path | None = None, overrides: list[str] | None = None):
    """The validated config that the command ``CONFIGS[name]`` reads (defaults <- YAML <- overrides)."""
    from redraft.config import STAGES, load_config
    from redraft.errors import ConfigError

    if name in STAGES:
        return load_config(name, config, overrides)
    from redraft.feedback.config import FeedbackConfig
    from redraft.rlhf.config import DPOConfig, RewardModelConfig, RLHFConfig

    classes = {"rm": RewardModelConfig, "dpo": DPOConfig, "rlhf": RLHFConfig, "feedback": FeedbackConfig}
    if name not in classes:
        raise ConfigError(f"unknown stage {name!r}; expected one of {sorted(CONFIGS)}")
    return load_config(classes[name], config, overrides)


def config_reference() -> str:
    """docs/config-reference.md: every command's config with its defaults and descriptions."""
    from redraft.config_docs import render_reference

    preamble = (
        "Generated from the config classes by `redraft config reference --output docs/config-reference.md`; "
        "do not edit it by hand (a test checks that it matches the code).\n\n"
        "Every command reads one config: its defaults (below) <- the YAML file of `--config` <- each "
        "`--set key=value` (the value parsed as YAML). Both merge key by key, so setting one key of a section "
        "keeps the section's other defaults. The default column is what a command uses with neither; "
        "`redraft config show NAME --explain` prints the same for your own config and overrides, as YAML "
        "with each key's description above it."
    )
    commands = [
        (command, f"{summary} Shown by `redraft config show {name}`.", load_named_config(name))
        for name, (command, summary) in CONFIGS.items()
    ]
    return render_reference(commands, preamble)


@config_app.command("show")
def config_show(
    stage: Annotated[str, typer.Argument(help=" | ".join(CONFIGS) + " (the command whose config is shown)")] = "run",
    config: ConfigOption = None,
    set_: SetOption = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Put each key's description above it, as a YAML comment.")
    ] = False,
) -> None:
    """Print the full effective config of a stage as YAML (--explain: with each key's description).

    Example: redraft config show dpo --explain --set dpo.beta=0.2
    """
    import yaml

    cfg = load_named_config(stage, config, set_)
    if explain:
        from redraft.config_docs import explain_config

        print(explain_config(cfg), end="")
        return
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")


@config_app.command("reference")
def config_reference_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the Markdown to this file instead of printing it.")
    ] = None,
) -> None:
    """Print the config reference (every command's keys, defaults and descriptions) as Markdown."""
    text = config_reference()
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    say(f"wrote {output}")
