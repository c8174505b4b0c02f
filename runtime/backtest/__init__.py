"""`backtest run`: a BACKTESTS row compiled into engine specs and graphs, run, and written as artifacts.

compile.py (workbook -> CompiledBacktest), run.py (evaluate, simulate, write DATA_ROOT/runs/<run_id>/),
tearsheet.py (the self-contained HTML report), cli.py (`run_cmd`, registered by runtime/cli.py),
many.py (`run_param_sets`: K parameter sets per call, nothing written; what optimization calls).
"""
