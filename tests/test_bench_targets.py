"""The learning-target checks of bench/main_job_seeds.py, on hand-made run summaries."""

import importlib.util
from pathlib import Path

from tests.test_score import _summary

_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "main_job_seeds.py"
_spec = importlib.util.spec_from_file_location("main_job_seeds", _SCRIPT)
main_job_seeds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(main_job_seeds)
learning_targets = main_job_seeds.learning_targets


def _run(sft: float, rl: float | None = None, gain_ci: float = 0.03) -> dict:
    """A ``summarize`` row: greedy accuracies, and RL's paired gain over SFT when RL ran."""
    row = {"greedy": {"sft": sft}, "pass@1": {"sft": sft}, "minutes": 10.0}
    if rl is not None:
        row["greedy"]["rl"] = rl
        row["rl_over_sft"] = {"mean": rl - sft, "ci95": gain_ci}
    return row


def _met(targets: list[dict]) -> dict[str, bool]:
    return {t["target"]: t["met"] for t in targets}


def test_every_self_correction_target_is_checked_on_the_means():
    met = _met(learning_targets({}, {"s0": _summary(0.86), "s1": _summary(0.88)}))
    assert all(met.values()) and len(met) == 5
    assert met["SCoRe Δ above every baseline's (best other: multiturn_rl +3.0)"]
    assert met["SCoRe Acc@t2 above the single-attempt control's Acc@t1 (87.0 vs 82.0)"]
    missed = _met(learning_targets({}, {"s0": _summary(0.81), "s1": _summary(0.82)}))
    assert missed["SCoRe Δ ≥ +5 with every run's CI excluding 0 (Δ +1.5)"] is False
    assert missed["SCoRe Δ above every baseline's (best other: multiturn_rl +3.0)"] is False


def test_a_self_correction_delta_whose_ci_includes_zero_misses_the_target():
    wide = _summary(0.86)
    wide["evaluations"]["score"]["test"]["ci95"]["delta"] = 0.07  # Δ +6 ± 7
    targets = learning_targets({}, {"s0": wide, "s1": _summary(0.88)})
    delta = next(t for t in targets if t["target"].startswith("SCoRe Δ ≥ +5"))
    assert delta == {"target": "SCoRe Δ ≥ +5 with every run's CI excluding 0 (Δ +7.0)", "value": 7.0, "met": False}


def test_sft_spread_and_rl_lift_over_runs():
    runs = {"s0-t1": _run(0.42, 0.64), "s0-t2": _run(0.44, 0.62), "s1-t2": _run(0.46, 0.59)}
    sft, rl, _ = learning_targets(runs)
    assert sft == {
        "target": "SFT greedy test accuracy within 5 points over the 3 runs (range 4.0)",
        "value": 4.0,
        "met": True,
    }
    # gains +22, +18, +13: mean +17.67, every CI (± 3) above 0
    assert rl["value"] == 17.67 and rl["met"] is True
    assert rl["target"].startswith("RL − SFT greedy ≥ +10 points with every run's paired CI excluding 0 (+17.7;")
    runs["s2-t2"] = _run(0.094, 0.15)  # SFT on its plateau: range 36.6; gain +5.6 still above its CI
    sft, rl, _ = learning_targets(runs)
    assert sft["value"] == 36.6 and sft["met"] is False
    assert rl["value"] == 14.65 and rl["met"] is True


def test_an_rl_gain_whose_ci_includes_zero_misses_the_lift_target():
    runs = {"s0": _run(0.40, 0.70), "s1": _run(0.40, 0.42, gain_ci=0.025)}  # mean +16, but +2 ± 2.5
    rl = learning_targets(runs)[-2]
    assert rl["value"] == 16.0 and rl["met"] is False


def test_a_job_over_15_minutes_misses_the_time_target():
    slow = {**_run(0.42, 0.64), "minutes": 15.5}
    assert learning_targets({"s0": _run(0.42, 0.64), "s1": slow})[-1] == {
        "target": "each job within 15 minutes on this machine (longest 15.5)",
        "value": 15.5,
        "met": False,
    }


def test_targets_without_their_inputs_are_left_out():
    def kinds(targets):
        return [t["target"].split(" ")[0] for t in targets]

    assert kinds(learning_targets({"s0": _run(0.42, 0.64)})) == ["RL", "each"]  # one run: no spread to check
    assert kinds(learning_targets({"s0": _run(0.42), "s1": _run(0.44)})) == ["SFT", "each"]  # rl.iterations=0
    assert kinds(learning_targets({"s0": _run(0.42, 0.64), "s1": _run(0.44)})) == ["SFT", "each"]  # RL in one only
    no_score = {"evaluations": {k: v for k, v in _summary(0.86)["evaluations"].items() if k != "score"}}
    assert learning_targets({}, {"s0": no_score, "s1": no_score}) == []
    assert learning_targets({}, {}) == []
