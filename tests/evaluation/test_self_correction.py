import json
import math
import random

import pytest
from PIL import Image
from typer.testing import CliRunner

from redraft.cli import app
from redraft.config import EvalConfig, SelfCorrectionSection
from redraft.errors import ConfigError
from redraft.evaluation.plots import plot_inference_scaling, plot_self_correction, self_correction_stages
from redraft.evaluation.self_correction import (
    PAPER_MATH500,
    ScalingResult,
    evaluate_self_correction,
    inference_scaling,
    majority_vote,
    normalized_edit_distance,
    render_self_correction_section,
    self_correction_metrics,
    vote_accuracy,
)
from redraft.models import save_model

INSTRUCTION = SelfCorrectionSection(instruction="\nfix: {prompt}")


def _transitions(c2c, i2c, c2i, i2i):
    """Two-attempt verdicts with the given numbers of each transition (first, last)."""
    return [[True, True]] * c2c + [[False, True]] * i2c + [[True, False]] * c2i + [[False, False]] * i2i


def _metrics(correct, answers=None, texts=None):
    answers = answers or [["1", "1"]] * len(correct)
    texts = texts or [["1", "1"]] * len(correct)
    return self_correction_metrics(correct, answers, texts)


def test_transition_shares_on_a_constructed_case():
    m = _metrics(_transitions(c2c=5, i2c=2, c2i=1, i2i=2))  # 10 problems
    assert m["acc@t1"][0] == pytest.approx(0.6)
    assert m["acc@t2"][0] == pytest.approx(0.7)
    assert m["delta_i2c"][0] == pytest.approx(0.2)
    assert m["delta_c2i"][0] == pytest.approx(0.1)
    assert m["delta"][0] == pytest.approx(0.1)


@pytest.mark.parametrize("seed", range(20))
def test_delta_identities_hold(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 300)
    correct = [[rng.random() < 0.5 for _ in range(rng.randint(2, 4))] for _ in range(n)]
    m = _metrics(correct)
    assert m["delta"][0] == m["delta_i2c"][0] - m["delta_c2i"][0]  # exact, by construction
    assert m["delta"][0] == pytest.approx(m["acc@t2"][0] - m["acc@t1"][0], abs=1e-12)
    # fractions of ALL problems, first vs last attempt
    assert m["delta_i2c"][0] * n == pytest.approx(sum(not c[0] and c[-1] for c in correct))


def test_confidence_intervals_are_paired_and_shrink_with_n():
    # Every problem flips the same way: Δ is certain although each accuracy on its own is 50/50.
    flips = [[False, True], [True, True]] * 50
    m = _metrics(flips)
    assert m["delta"] == (0.5, pytest.approx(1.96 * math.sqrt(0.25 * 100 / 99 / 100)))
    constant = _metrics([[True, True]] * 40)
    assert constant["delta"] == (0.0, 0.0) and constant["acc@t1"] == (1.0, 0.0)
    small, large = _metrics(_transitions(3, 3, 2, 2)), _metrics(_transitions(30, 30, 20, 20))
    assert small["acc@t1"][0] == large["acc@t1"][0]
    assert large["acc@t1"][1] < small["acc@t1"][1]
    assert math.isnan(_metrics([[True, False]])["delta"][1])  # one problem: no interval


def test_changed_compares_answers_and_text_separately():
    correct = [[True, True]] * 4
    answers = [["12", "12"], ["12", "13"], [None, "4"], [None, None]]
    texts = [["12", "12 "], ["12", "13"], ["x", "4"], ["a", "a"]]
    m = self_correction_metrics(correct, answers, texts)
    assert m["changed"][0] == pytest.approx(0.5)
    assert m["changed_text"][0] == pytest.approx(0.75)
    expected = (1 / 3 + 1 / 2 + 1 + 0) / 4
    assert m["edit_ratio"][0] == pytest.approx(expected)


def test_normalized_edit_distance():
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("abc", "abc") == 0.0
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert normalized_edit_distance("", "ab") == 1.0
    assert normalized_edit_distance("ab", "ba") == 1.0


def test_metrics_reject_single_attempts():
    with pytest.raises(ValueError):
        _metrics([[True]])


def test_majority_vote_ties_and_missing_answers():
    assert majority_vote(["3", "4", "4", "3", "5"]) == 0  # tie 3 vs 4: the answer seen first
    assert majority_vote(["3", "4", "4"]) == 1
    assert majority_vote([None, None, "7"]) == 2  # no answer never wins
    assert majority_vote([None, None]) is None
    answers = [["1", "2", "2"], [None, "5", "6"], [None, None, None]]
    correct = [[True, False, False], [False, False, True], [False, False, False]]
    assert vote_accuracy(answers, correct, 1)[0] == pytest.approx(1 / 3)
    assert vote_accuracy(answers, correct, 3)[0] == 0.0
    with pytest.raises(ValueError):
        vote_accuracy(answers, correct, 4)


def test_scaling_on_the_micro_model(micro_model, tokenizer, micro_task):
    examples = micro_task.test[:6]
    kwargs = {"max_new_tokens": 4, "seed": 3}
    result = inference_scaling(micro_model, tokenizer, micro_task, examples, INSTRUCTION, [4, 2], **kwargs)
    assert result.budgets == [2, 4] and result.num_problems == 6
    assert all(0 <= v <= 1 for v in result.parallel + result.self_correct)
    again = inference_scaling(micro_model, tokenizer, micro_task, examples, INSTRUCTION, [2, 4], **kwargs)
    assert again == result  # seeded
    with pytest.raises(ValueError):
        inference_scaling(micro_model, tokenizer, micro_task, examples, INSTRUCTION, [3], **kwargs)


def test_evaluate_self_correction_end_to_end(tmp_path, micro_model, tokenizer, micro_task):
    examples = micro_task.test[:10]
    samples = tmp_path / "samples.jsonl"
    result = evaluate_self_correction(
        micro_model, tokenizer, micro_task, examples, INSTRUCTION, max_new_tokens=4, samples_path=samples
    )
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert result.num_problems == len(rows) == 10
    assert rows[0]["prompt"] == micro_task.prompt(examples[0]) and len(rows[0]["attempts"]) == 2
    for row, example in zip(rows, examples):
        assert row["correct"] == [micro_task.check(text, example) for text in row["attempts"]]
    recomputed = self_correction_metrics(
        [r["correct"] for r in rows], [r["extracted"] for r in rows], [r["attempts"] for r in rows]
    )
    assert result.metrics == {name: value for name, (value, _) in recomputed.items()}
    # greedy/greedy is deterministic; a sampled attempt 1 is seeded
    assert (
        evaluate_self_correction(micro_model, tokenizer, micro_task, examples, INSTRUCTION, max_new_tokens=4) == result
    )
    sampled = [
        evaluate_self_correction(
            micro_model, tokenizer, micro_task, examples, INSTRUCTION, max_new_tokens=4, first_temperature=1.0, seed=5
        )
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1] and sampled[0].first_temperature == 1.0


def test_report_section_has_our_rows_the_paper_rows_and_scaling():
    m = _metrics(_transitions(c2c=5, i2c=2, c2i=1, i2i=2))
    from redraft.evaluation.self_correction import SelfCorrectionResult

    ours = SelfCorrectionResult(
        10, 2, 0.0, {k: v for k, (v, _) in m.items()}, {k: c for k, (_, c) in m.items()}, [0.0, 0.0]
    )
    scaling = ScalingResult([2, 4], 1.0, [0.5, 0.6], [0.1, 0.1], [0.55, 0.7], [0.1, 0.1], 10)
    text = render_self_correction_section({"SCoRe (ours)": ours}, {"SCoRe (ours)": scaling})
    row = next(line for line in text.splitlines() if line.startswith("| SCoRe (ours)"))
    assert "| 60.0 ± " in row and "| +10.0 ± " in row and "| 20.0 ± " in row
    assert "Gemini 1.5 Flash on MATH500" in text and "SCoRe (ours): t1 0.0%, t2 0.0%" in text
    for name, (t1, t2, delta, i2c, c2i) in PAPER_MATH500.items():
        assert f"| {name} (paper) | {t1:.1f} | {t2:.1f} | {delta:+.1f} | {i2c:.1f} | {c2i:.1f} |" in text
    assert "| self-correct + vote (%) | 55.0 ± 10.0 | 70.0 ± 10.0 |" in text
    # A single-attempt model's row keeps Acc@t1 and blanks what its untrained attempt 2 would show.
    text = render_self_correction_section({"control": ours}, single_attempt=["control"])
    row = next(line for line in text.splitlines() if line.startswith("| control"))
    assert row.startswith("| control | 60.0 ± ") and row.endswith("| – | – | – | – | – |")
    assert "control: t1 0.0%." in text  # nor its attempt 2's truncation


def test_plots(tmp_path):
    records = [
        {
            "stage": "score_stage1",
            "step": s,
            "accuracy_t1": 0.5,
            "accuracy_t2": 0.5 + s / 100,
            "delta": s / 100,
            "kl_t1": 0.01,
            "kl_t2": 0.1 * s,
            "reward_t2": 0.5,
        }
        for s in range(1, 6)
    ]
    records += [{"stage": "multiturn_rl", "step": s, "accuracy_t2": 0.6} for s in range(1, 4)]
    plot_self_correction(records, ["score_stage1", "multiturn_rl"], tmp_path / "sc.png")
    assert Image.open(tmp_path / "sc.png").size[0] > 1000  # four metric columns
    # Pair-SFT logging only its losses has no curve to draw
    losses_only = records + [{"stage": "pair_sft", "step": 100, "loss": 0.3, "val_loss": 0.4}]
    assert self_correction_stages(losses_only, ["pair_sft", "score_stage1", "score_stage2", "multiturn_rl"]) == [
        "score_stage1",
        "multiturn_rl",
    ]
    # Pair-SFT's greedy validation checks get a row of their own, drawn in the same panels
    records += [
        {"stage": "pair_sft", "step": s, "val_loss": 0.5, "val_acc_t1": 0.7, "val_acc_t2": 0.8, "val_delta": 0.1}
        for s in (100, 200)
    ]
    assert self_correction_stages(records, ["pair_sft", "score_stage1"]) == ["pair_sft", "score_stage1"]
    plot_self_correction(records, ["pair_sft", "score_stage1"], tmp_path / "sc2.png")
    assert Image.open(tmp_path / "sc2.png").size[1] > Image.open(tmp_path / "sc.png").size[1] * 0.9
    with pytest.raises(ValueError):
        plot_self_correction([{"stage": "sft", "step": 1, "loss": 1.0}], ["sft"], tmp_path / "none.png")
    scaling = ScalingResult([2, 4, 8], 1.0, [0.5, 0.6, 0.65], [0.1] * 3, [0.55, 0.7, 0.75], [0.1] * 3, 10)
    plot_inference_scaling({"base": scaling, "score": scaling}, tmp_path / "scaling.png")
    assert Image.open(tmp_path / "scaling.png").size[0] > 300


def test_config_validates_scaling_budgets():
    assert EvalConfig.model_validate({"eval": {"scaling_budgets": [2, 8]}}).eval.scaling_budgets == [2, 8]
    from redraft.config import build_config

    with pytest.raises(ConfigError, match="even"):
        build_config(EvalConfig, {"eval": {"scaling_budgets": [3]}})


def test_cli_self_correct(tmp_path, micro_model, tokenizer, micro_task):
    model_dir = tmp_path / "model"
    save_model(micro_model, tokenizer, model_dir)
    args = [
        "eval",
        "--self-correct",
        "--model",
        str(model_dir),
        "--name",
        "sc",
        "--first-temperature",
        "1.0",
        "--set",
        f"run.output_dir={tmp_path}",
        "--set",
        "task.train_size=600",
        "--set",
        "task.val_size=32",
        "--set",
        "task.test_size=64",
        "--set",
        "task.max_digits=2",
        "--set",
        "eval.num_problems=8",
        "--set",
        "eval.max_new_tokens=4",
        "--set",
        "eval.scaling_budgets=[2,4]",
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    saved = json.loads((tmp_path / "sc" / "self_correction.json").read_text())
    assert printed["num_problems"] == saved["num_problems"] == 8 and printed["first_temperature"] == 1.0
    assert printed["delta"] == saved["metrics"]["delta"]
    assert saved["scaling"]["budgets"] == [2, 4]
    assert len((tmp_path / "sc" / "samples.jsonl").read_text().splitlines()) == 8
    assert (tmp_path / "sc" / "inference_scaling.png").is_file()
    assert "| model |" in (tmp_path / "sc" / "self_correction.md").read_text()
