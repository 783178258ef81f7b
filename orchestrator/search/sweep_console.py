"""What a person sees of a whole sweep: the Tune callback printing each trial's lines and the progress line,
and the closing summary (front, reference, files, commands). The per-epoch and per-trial lines themselves
are orchestrator/engine/console.py's, which a single run uses too."""

from __future__ import annotations

from typing import Any

from orchestrator.base.numbers import is_missing
from orchestrator.engine.console import Progress, _number, epoch_line, trial_line


class TrialNotes:
    """What the console says of a trial beside its metrics: its method and label, and, once, the auxiliary models it
    will fine-tune first (the KD-LoRA teacher, the student's own FFT ceiling: orchestrator/recipes/auxiliary.py),
    named by role; their epochs are not the trial's."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.announced: dict[Any, Any] = {}  # folder -> AuxModel, each said once

    def trial_config(self, trial: Any) -> Any:
        from orchestrator.config.schema import with_values
        from orchestrator.spec.space import trial_point

        return with_values(self.cfg, trial_point(trial.config))

    def describe(self, trial: Any) -> tuple[str, str]:
        from orchestrator import recipes
        from orchestrator.config.schema import flat_scalars

        trial_cfg = self.trial_config(trial)
        return trial_cfg.method.name, recipes.label(flat_scalars(trial_cfg.to_dict()))

    def auxiliary_note(self, trial: Any) -> str:
        """'; first fine-tunes ...' for the trial that will train an auxiliary model no trial announced yet."""
        from orchestrator import recipes

        trial_cfg, results = self.trial_config(trial), self.cfg.results_dir
        new = [aux for aux in recipes.get_recipe(trial_cfg.method.name).auxiliary_models(trial_cfg)
               if aux.folder(results) not in self.announced and not aux.is_cached(results)]
        if not new:
            return ""
        self.announced.update({aux.folder(results): aux for aux in new})
        epochs = trial_cfg.method.teacher_epochs
        return (f"; first fine-tunes {' and '.join(aux.title for aux in new)} ({epochs} epoch{'s' * (epochs > 1)}"
                f"{' each' if len(new) > 1 else ''}; cached for later trials)")

    def pending(self) -> tuple[str, ...]:
        """The announced auxiliary models not cached yet (the progress line says the sweep waits on them)."""
        return tuple(aux.title for aux in self.announced.values() if not aux.is_cached(self.cfg.results_dir))


class ConsoleCallback:
    """A Tune callback printing `epoch_line` per report and `trial_line` + `progress_line` per finished trial."""

    def __new__(cls, cfg: Any, total: int) -> Any:  # subclass ray's Callback lazily (Ray imported late)
        import dataclasses

        from ray.tune import Callback

        # Tune pickles this callback (and the config it closes over) into tune/tuner.pkl: no tracking URI,
        # which may hold a password; the console never needs it.
        cfg = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, uri=None))
        notes = TrialNotes(cfg)

        class _Callback(Callback):
            def __init__(self) -> None:
                self.progress = Progress(total=total, epochs=cfg.train.epochs, bound=cfg.search.scheduler != "none")

            def _print(self, text: str) -> None:
                print(f"[{cfg.name}] {text}", flush=True)

            def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self.progress.start(trial.trial_id, sum(1 for t in trials if t.status == "RUNNING"))
                method, label = notes.describe(trial)
                self._print(f"{trial.trial_id} {method} {label} started{notes.auxiliary_note(trial)}")

            def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
                if "epoch" in result:
                    self.progress.epoch(trial.trial_id, result)
                    self._print(epoch_line(trial.trial_id, notes.describe(trial)[0], result, cfg.train.epochs))

            def _finished(self, trials: list, trial: Any, error: bool) -> None:
                from orchestrator.reports.sweep_outputs import trial_status

                result = trial.last_result or {}
                status = trial_status(result, "error" if error else None, bool(result.get("full_budget")))
                method, label = notes.describe(trial)
                self._print(trial_line(trial.trial_id, method, label, result, status))
                running = [t.trial_id for t in trials if t.status == "RUNNING" and t is not trial]
                self.progress.finish(trial.trial_id, status, _number(result, "metric"), running)
                self._print(self.progress.line(pending=notes.pending()))

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self._finished(trials, trial, error=False)

            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self._finished(trials, trial, error=True)

        return _Callback()


def summary(cfg: Any, trials: Any, front: Any, sweep_dir: Any, experiment_url: str = "") -> list[str]:
    """The closing lines of a sweep: what happened to each trial, the front, the files, the commands
    (`experiment_url`: the sweep's runs page on `orchestrator ui`, when it logged to the local database)."""
    from orchestrator import recipes

    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    lines = [f"{len(trials)} trials: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")]
    if len(front):
        lines.append(f"Pareto front ({len(front)} of {int(trials['full_budget'].sum())} full-budget trials):")
        for _, row in front.iterrows():
            result = {k: (None if is_missing(v) else v) for k, v in row.items()}
            lines.append("  " + trial_line(str(row["trial_id"]), str(row["method.name"]), recipes.label(row), result,
                                           ""))
    lines += reference_lines(cfg, trials, front, sweep_dir)
    from orchestrator.base.shell import module_command, relative_path
    from orchestrator.base.sweep_folder import SweepFolder

    written = ", ".join(path.name for path in SweepFolder(sweep_dir).outputs())
    lines += [f"files: {relative_path(sweep_dir)}/{written} (and .svg)",
              f"report: {module_command('orchestrator', 'report', relative_path(sweep_dir))}"
              "   (an HTML page: front, curves, trials)",
              f"MLflow UI: {module_command('orchestrator', 'ui', '--results', relative_path(cfg.results_dir))}"
              + (f", then {experiment_url}" if experiment_url else "")]
    if experiment_url:
        from orchestrator.tracking.runs import chart_view

        lines.append(f"  the trials as charts of metric against size: {chart_view(experiment_url)}")
    storage = study_storage(cfg, sweep_dir)
    if storage:
        from orchestrator.base.redact import redact_uri
        from orchestrator.base.shell import dashboard_command

        lines.append(f"Optuna dashboard: {dashboard_command(redact_uri(storage) or storage)}")
    return lines


def reference_lines(cfg: Any, trials: Any, front: Any, sweep_dir: Any) -> list[str]:
    """What the trials are judged against (orchestrator/reports/references.py), or that the sweep has nothing to judge by."""
    from orchestrator.reports.references import judged, missing_note, recorded

    refs = recorded(cfg, trials, sweep_dir)
    return [f"reference: {judged(ref, trials, front)}" for ref in refs] or [f"reference: {missing_note(trials)}"]


def study_storage(cfg: Any, sweep_dir: Any) -> str | None:
    """The URL of the sweep's Optuna study, or None when it has none (a grid, or --smoke's plain grid)."""
    from pathlib import Path

    from orchestrator.search.optuna_search import storage_url

    if cfg.search.sampler == "grid":
        return None
    url = storage_url(cfg.search.storage, sweep_dir)
    if url.startswith("sqlite:///"):  # a local study exists once its database file does
        return url if Path(url[len("sqlite:///"):]).is_file() else None
    try:  # a database server: ask it (without creating anything)
        import optuna

        return url if cfg.name in optuna.study.get_all_study_names(storage=url) else None
    except Exception:
        return None
