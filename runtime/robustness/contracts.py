"""Robustness result records: the frozen values the statistics layer returns.

Why a separate module: the runtime (``backtest robustness``, the HTML report, the registry) reads these records
and never the statistics' internals, so either side can change alone. Arrays inside a record are made
read-only at construction so a frozen record stays frozen; records holding arrays compare by identity
(``eq=False``) because element-wise ``==`` on arrays has no single truth value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _readonly(a: Any) -> np.ndarray:
    """A read-only float/int copy, so a result cannot be altered after it is returned."""
    arr = np.array(a, copy=True)
    arr.setflags(write=False)
    return arr


class _ArraysReadOnly:
    """Mixin: after __init__, every ndarray field is replaced by a read-only copy."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                object.__setattr__(self, name, _readonly(value))


@dataclass(frozen=True)
class Verdict:
    """A plain-words reading of one statistic: ``passed`` False = a warning sign, None = not decidable."""

    test: str
    passed: bool | None
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class DSRResult:
    """The Deflated Sharpe Ratio and the benchmark it deflated against (all Sharpes per period)."""

    dsr: float
    sr: float
    sr0: float  #: expected maximum Sharpe of n_trials unskilled trials = sqrt(var_trial_sr) * e_max_z
    e_max_z: float  #: expected maximum of n_trials standard normals (Euler-Mascheroni approximation)
    n: int
    n_trials: float
    var_trial_sr: float
    skew: float
    kurt: float


@dataclass(frozen=True, eq=False)
class PBOResult(_ArraysReadOnly):
    """CSCV Probability of Backtest Overfitting with the per-split detail (one entry per split)."""

    pbo: float
    logits: np.ndarray  #: lambda_c = ln(w / (1 - w)) per split
    oos_rank: np.ndarray  #: w_c = OOS rank of the IS-best trial / (N + 1), in (0, 1)
    best_trial: np.ndarray  #: n*_c, the IS-best trial's column per split
    is_metric: np.ndarray  #: R_{n*} (IS metric of the IS-best trial) per split
    oos_metric: np.ndarray  #: Rbar_{n*} (its OOS metric) per split
    S: int
    n_splits: int
    n_trials: int
    n_periods: int  #: rows used (leading rows dropped so S divides them)
    dropped_rows: int
    degradation_slope: float  #: OLS slope of oos_metric on is_metric (negative = IS skill does not carry)
    degradation_r2: float
    prob_oos_loss: float  #: share of splits where the IS-best trial's OOS metric is < 0
    metric: str

    @property
    def rank_pairs(self) -> np.ndarray:
        """(IS metric, OOS metric) of the IS-best trial per split: the degradation scatter."""
        return np.column_stack([self.is_metric, self.oos_metric])


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of one statistic (percentile method)."""

    estimate: float  #: the statistic on the original series
    low: float
    high: float
    level: float


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Block-bootstrap CIs of several statistics of one return series (same resamples for all)."""

    kind: str  #: "stationary" or "circular"
    block: float  #: the (mean, for stationary) block length used
    block_from_data: bool  #: True when block came from arch.optimal_block_length
    n: int
    seed: int
    level: float
    intervals: dict[str, Interval]
    distributions: dict[str, np.ndarray]  #: the n bootstrap values per statistic (read-only)
    prob_sharpe_le_0: float | None  #: share of resamples with Sharpe <= 0 (None if Sharpe not computed)

    def __post_init__(self) -> None:
        object.__setattr__(self, "intervals", dict(self.intervals))
        object.__setattr__(self, "distributions", {k: _readonly(v) for k, v in self.distributions.items()})


@dataclass(frozen=True)
class SPAResult:
    """Hansen's SPA and White's Reality Check over N trials against a benchmark (H0: none beats it)."""

    p_consistent: float  #: Hansen's SPA p-value (the one to report)
    p_lower: float
    p_upper: float
    p_reality_check: float  #: White's Reality Check (non-studentised, fully re-centred)
    better_models: tuple[int, ...]  #: trials rejected as no better than the benchmark at `size` (consistent)
    superior_models: tuple[int, ...] | None  #: Romano-Wolf StepM set at `size` (None = not run)
    size: float
    block: float
    kind: str
    reps: int
    seed: int
    n_models: int
    n_periods: int
    studentized: bool


@dataclass(frozen=True, eq=False)
class PlaceboResult(_ArraysReadOnly):
    """The real strategy's metric against block-shuffled copies of its own positions."""

    pvalue: float  #: (1 + #placebos >= real) / (n + 1)
    percentile: float  #: share of placebos strictly below the real metric
    real: float
    placebos: np.ndarray
    n: int
    block: int
    seed: int


@dataclass(frozen=True, eq=False)
class LagSweepResult(_ArraysReadOnly):
    """The metric at each extra execution lag; negative lags are a deliberate lookahead placebo."""

    lags: np.ndarray
    metrics: np.ndarray
    peak_lag: int
    lookahead_peak: bool  #: the best negative lag beats every lag >= 0 by more than peak_margin
    collapse_at_lag1: bool  #: metric(+1) < collapse_ratio * metric(0) with metric(0) > 0
    peak_margin: float
    collapse_ratio: float

    def metric_at(self, lag: int) -> float:
        hits = np.flatnonzero(self.lags == lag)
        if hits.size == 0:
            raise KeyError(f"lag {lag} was not swept (swept: {self.lags.tolist()})")
        return float(self.metrics[hits[0]])


@dataclass(frozen=True)
class StabilityResult:
    """How flat the metric surface is around the best grid point."""

    score: float  #: share of the best point's grid neighbours within tol of the best
    plateau_share: float  #: share of all finite grid points within tol of the best
    best_index: tuple[int, ...]
    best_value: float
    n_neighbours: int
    tol: float


@dataclass(frozen=True)
class BreakEvenResult:
    """The cost multiple at which the metric falls to the threshold (linear between tested multiples)."""

    multiple: float | None
    status: str  #: "crosses", "above_at_all" (never falls within range), "below_at_all" (never above)
    threshold: float
    tested: tuple[tuple[float, float], ...]  #: (multiple, metric) in ascending multiple order


@dataclass(frozen=True, eq=False)
class GapResult(_ArraysReadOnly):
    """IS vs OOS Sharpe, and where the OOS Sharpe falls in the IS block-bootstrap distribution."""

    is_sharpe: float
    oos_sharpe: float
    ratio: float  #: OOS / IS Sharpe (NaN when IS Sharpe is 0 or missing)
    percentile: float  #: share of IS bootstrap Sharpes (at the OOS length) below the OOS Sharpe
    inside: bool  #: OOS Sharpe inside the central `level` band of that distribution
    level: float
    is_distribution: np.ndarray
    block: float
    n: int
    seed: int


@dataclass(frozen=True)
class MultipleTestingResult:
    """The selection-bias statistics of a study's chosen trial, with plain-words verdicts."""

    best: int  #: the chosen trial's column
    n_periods: int
    n_trials: float  #: N used by DSR
    var_trial_sr: float  #: cross-sectional variance of per-period trial Sharpes (ddof=1)
    sharpe_annual: float
    psr: float  #: PSR against 0
    dsr: DSRResult
    min_trl_periods: float  #: MinTRL against 0 at confidence 1 - alpha
    min_trl_years: float
    pbo: PBOResult | None  #: None with fewer than 2 trials
    spa: SPAResult | None
    verdicts: tuple[Verdict, ...]


# --------------------------------------------------------------------------------------------------
# The runtime's records (issue 12 runtime: `backtest robustness`; contract section D)
# --------------------------------------------------------------------------------------------------

#: verdict levels of summary.json (contract D): pass, warn (a warning sign), fail (a red flag), info
LEVELS = ("pass", "warn", "fail", "info")
#: test statuses of summary.json
STATUSES = ("ok", "skipped", "error")


@dataclass(frozen=True, eq=False)
class EngineInputs:
    """One evaluated backtest as the kernel takes it, cut to its traded rows (trade_start 0).

    Why: lag sweep and placebo re-run the kernel on altered signals; they must not reload or re-evaluate
    anything, and they must be testable on synthetic arrays. ``day`` numbers sessions (daily: 0..T-1),
    ``dates`` is each session's date (one per session, datetime64[D]).
    """

    market: Any  #: runtime.engine.contracts.Market
    signal: np.ndarray
    column: Any  #: runtime.engine.contracts.ColumnSpec
    spec: Any  #: runtime.engine.contracts.RunSpec
    day: np.ndarray
    dates: np.ndarray
    scaling: np.ndarray | None = None
    gates: Any = None  #: runtime.engine.contracts.Gates or None


@dataclass(frozen=True, eq=False)
class TestResult:
    """One robustness test's outcome: the summary.json entry plus its tables (written as parquet).

    ``tables`` maps a file stem to a pandas DataFrame; the stem equal to ``test_id`` is the test's main
    table (summary "table"), others are extra files (walk_forward_equity).
    """

    test_id: str
    status: str  #: ok | skipped | error
    level: str  #: pass | warn | fail | info
    text: str
    numbers: dict[str, Any]
    tables: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if self.level not in LEVELS:
            raise ValueError(f"level {self.level!r} is not one of {LEVELS}")

    @property
    def passed(self) -> bool | None:
        """The registry's robustness_results.passed: pass True, warn/fail False, info/skipped None."""
        if self.status != "ok" or self.level == "info":
            return None
        return self.level == "pass"


@dataclass(frozen=True)
class RobustnessOutcome:
    """What `run_robustness` returns: the run folder, whether it was computed now, the per-test results."""

    run_id: str
    run_dir: Any  #: pathlib.Path
    created: bool  #: False = the run existed (same snapshot, data, target, profile) and was not recomputed
    target: str
    target_type: str  #: backtest | study
    profile: str
    summary: dict[str, Any]
    seconds: float
    results: tuple[TestResult, ...] = ()
