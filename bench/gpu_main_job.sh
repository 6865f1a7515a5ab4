#!/usr/bin/env bash
# The main job on one GPU with larger presets: what RL and SCoRe do at that scale.
# Usage (from the repository root, CUDA torch installed): bash bench/gpu_main_job.sh [OUT_DIR]
# Writes each run's report.md and metrics.jsonl to OUT_DIR (default runs/gpu), and a log.
set -uo pipefail
out=${1:-runs/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
run() {  # name, time limit (s), overrides...
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" python3 -m redraft run --name "$name" --set run.output_dir=runs --set logging.progress=false "$@" \
        > "$out/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s"
    grep -E "greedy accuracy|Error|error" "$out/$name.log" | tail -12
    cp "runs/$name/report.md" "$out/$name-report.md" 2>/dev/null
    cp "runs/$name/metrics.jsonl" "$out/$name-metrics.jsonl" 2>/dev/null
}
# 1. A micro run first: a device error shows in seconds, not after the long runs.
run gpu-micro 120 --set task.train_size=600 --set task.val_size=32 --set task.test_size=48 --set model.preset=micro \
    --set sft.max_steps=20 --set rl.iterations=3 --set rl.prompts_per_iteration=8 --set score.pair_sft.max_steps=3 \
    --set score.pair_sft.batch_size=16 --set score.stage1_iterations=2 --set score.stage2_iterations=2 \
    --set score.rl.prompts_per_iteration=4 --set score.star_problems=64 --set score.star.max_steps=2 \
    --set score.star.batch_size=2 --set score.eval.num_problems=16 --set score.eval.scaling_budgets=[2,4]
# 2. The default main job with the `base` preset (6 layers, d 384).
run gpu-base "${BASE_LIMIT:-300}" --set model.preset=base
# 3. 8 layers, d 512.
run gpu-l8d512 "${LARGE_LIMIT:-240}" --set model.preset=base --set model.layers=8 --set model.hidden=512 --set model.heads=8
