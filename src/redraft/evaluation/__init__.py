"""Evaluation: accuracy and pass@k, plots and the per-run report."""
