"""Optimization studies from the workbook (issue 11): Optuna ask/tell in batches through run_param_sets."""
