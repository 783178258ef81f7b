"""The sweep's Optuna searcher: Ray's OptunaSearch, with its study in a database and only full-budget
trials told as COMPLETE, with the violations of `search.constraints` for the sampler.

Ray's OptunaSearch tells Optuna every trial that ends with a result as COMPLETE with the values it last
reported (ray/tune/search/optuna/optuna_search.py, on_trial_complete). A trial that ASHA stopped at a rung
then enters NSGA-II's population and TPE's model with a partial metric and its size, false points on the
front the sampler learns from (../shared/notes/STACK.md). Here a trial without `full_budget` is told as
PRUNED (stopped early) or FAIL (diverged), which the samplers leave out. Imported only when a sweep runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from orchestrator.base.redact import STORAGE_URL_VAR, conceal_uri, reveal_uri
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.constraints import Constraint, violations

MISSING_VIOLATION = 1e30  # a bound on a number the trial did not report: as far from feasible as can be


class FullBudgetOptunaSearch(OptunaSearch):
    def __init__(self, *args: Any, constraints: tuple[Constraint, ...] = (), **kwargs: Any) -> None:
        self.constraints = tuple(constraints)
        super().__init__(*args, **kwargs)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result is not None and not result.get("full_budget"):
            error = error or bool(result.get("diverged"))
            result = None  # OptunaSearch tells a trial without values as PRUNED, or FAIL on error
        if result is not None and trial_id in self._ot_trials:
            # Optuna 5's constrained dominance (NSGA-II, TPE) reads them from the trial: set before it is told.
            for constraint, violation in zip(self.constraints, violations(list(self.constraints), result),
                                             strict=True):
                self._ot_trials[trial_id].set_constraint(str(constraint), min(violation, MISSING_VIOLATION))
        super().on_trial_complete(trial_id, result, error)


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The study's database: `search.storage`, or sqlite under the sweep's folder."""
    return storage or f"sqlite:///{SweepFolder(Path(sweep_dir).resolve()).optuna_db}"


class ConcealedRDBStorage(optuna.storages.RDBStorage):
    """Optuna's database storage, pickled (Tune's tuner.pkl and searcher-state-*.pkl) without its URL's password;
    unpickled in a driver that concealed it (make_tuner, orchestrator/base/redact.py), it connects with the real URL."""

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = conceal_uri(self.url, STORAGE_URL_VAR)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__({**state, "url": reveal_uri(state["url"], STORAGE_URL_VAR)})


def rdb_storage(url: str) -> Any:
    return ConcealedRDBStorage(url)


def fail_abandoned(url: str, study_name: str) -> int:
    """Mark FAIL the trials a finished sweep's study still holds as RUNNING: asked for by a driver killed before
    Tune saved them, they would otherwise count as running for ever (samplers, optuna-dashboard). How many."""
    try:
        study = optuna.load_study(study_name=study_name, storage=rdb_storage(url))
    except KeyError:  # no study of that name (a grid sweep has none)
        return 0
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # the public API, not study._storage
    return len(running)
