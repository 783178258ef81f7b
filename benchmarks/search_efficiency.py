"""Search efficiency (issue 10, item 4): hypervolume of the front against compute, three strategies, three seeds.

    python -m benchmarks.search_efficiency [--seeds 0 1 2] [--train-examples 128] [--eval-examples 128]

A task cheap enough to repeat on 2 CPU cores: glue/sst2 with MiniLM-L3 (pre-trained, 3 layers),
`--train-examples` training and `--eval-examples` validation examples (stratified subsets, the
project's build_dataset), max_length 48, batch 32, 3 epochs, the quickstart's objectives
(metric:max, params:min) and its kind of space, made finite so that a grid can cover it:
    method.name {pc_lora, kd_lora}, method.rank {4, 16, 32}, method.decay_schedule {sine, linear}
    (pc_lora), method.kd_weight {0.0, 0.5}, method.student_layers {1, 2} (kd_lora): 24 points.
Each trial is trained in this process with the real loop's pieces (orchestrator.loop.build_model,
method_loss, deployable_model, evaluate; AdamW + linear warm-up/decay as train_worker), the KD-LoRA
teacher fine-tuned once per seed (method.teacher_epochs, its logits cached as the sweep does); it is
not run through Ray (a TorchTrainer's ~25 s start per trial would make 3 x 3 sweeps take hours here).

Strategies, with the same budget (the grid's: 24 trials x 3 epochs = 72 epochs) per seed:
- grid: orchestrator.search.grid_points, every point for 3 epochs, no early stopping;
- random: Optuna's RandomSampler through orchestrator.search.sample_point, no early stopping;
- optuna+asha: the sweep's searcher (orchestrator.tune.make_searcher's choices: NSGA-II with the
  population scaled to the budget, one seeded point per method first) with ASHA's rule
  (orchestrator.asha: rung at epoch 2 of 3, reduction factor 2, the quickstart's settings).
Compute = epochs trained (a stopped trial costs the epochs it ran). Training is deterministic per
(point, seed), so each distinct (point, seed) is trained once for 3 epochs and its per-epoch metrics
are replayed by every strategy that draws it; a strategy is charged for every epoch it draws.
Hypervolume: orchestrator.pareto.hypervolume of the full-budget trials' (metric, params) against the
fixed reference (accuracy 0.5 = chance, params of the uncompressed model). Target: optuna+asha
reaches the grid's final hypervolume within a third of the grid's compute.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import (
    ROOT,
    command_line,
    load_average,
    machine,
    machine_line,
    quiet_transformers,
    write,
)

SPACE = {"method.name": {"choice": ["pc_lora", "kd_lora"]}, "method.rank": {"choice": [4, 16, 32]},
         "method.decay_schedule": {"choice": ["sine", "linear"]}, "method.kd_weight": {"choice": [0.0, 0.5]},
         "method.student_layers": {"choice": [1, 2]}}
EPOCHS = 3


class Trainer:
    """Trains one point for EPOCHS epochs with the loop's functions; caches per (point, seed)."""

    def __init__(self, args: argparse.Namespace, seed: int, work: Path) -> None:
        from orchestrator.spec.load import load_config
        from orchestrator.spec.yaml_file import read_yaml
        from orchestrator.tasks import build_dataset, get_task

        raw = read_yaml(ROOT / "search_spaces" / "quickstart.yaml")
        raw.update({"name": "bench-search", "model": str(args.model), "data_dir": str(args.data_dir),
                    "results_dir": str(work), "space": SPACE})
        raw["train"] = {**raw["train"], "epochs": EPOCHS, "max_examples": args.train_examples, "max_length": 48,
                        "seed": seed}
        raw["eval"] = {"max_examples": args.eval_examples}
        raw["search"] = {**raw["search"], "num_samples": 24}
        self.cfg = load_config(None, base=raw)
        self.task = get_task(self.cfg.task)
        common = {"data_dir": self.cfg.data_dir, "max_length": 48, "seed": seed, "model_name_or_path": self.cfg.model,
                  "cache_dir": str(work / ".cache")}
        self.train_set, self.train_collate = build_dataset(self.task, "train", max_examples=args.train_examples,
                                                           train=True, **common)
        self.eval_set, self.eval_collate = build_dataset(self.task, self.task.eval_split,
                                                         max_examples=args.eval_examples, train=False, **common)
        self.seed, self.work, self.cache = seed, work, {}
        self.teacher_dir, self.teacher_logits, self.teacher_seconds = None, None, 0.0
        self.train_seconds = 0.0

    def _loader(self) -> Any:
        from torch.utils.data import DataLoader, DistributedSampler

        sampler = DistributedSampler(self.train_set, num_replicas=1, rank=0, shuffle=True, seed=self.seed)
        return sampler, DataLoader(self.train_set, batch_size=self.cfg.train.batch_size, sampler=sampler,
                                   collate_fn=self.train_collate)

    def _fit(self, cfg: Any, model: torch.nn.Module, epochs: int) -> list[float]:
        """train_worker's loop (CPU, one process, the loop's own `train_step`) with an evaluation after every epoch."""
        from orchestrator.engine.loop import StepState, evaluate, make_optimizer, seed_everything, train_step
        from orchestrator.recipes import get_recipe
        from orchestrator.recipes.kd_lora import KDTeacher
        from orchestrator.tasks import compute_metrics

        seed_everything(cfg.train.seed)
        sampler, loader = self._loader()
        total = len(loader) * epochs
        recipe = get_recipe(cfg.method.name)
        optimizer, scheduler, trainable = make_optimizer(cfg, model, total)
        aux = KDTeacher(logits=self.teacher_logits) if self.teacher_logits is not None else None
        state = StepState(cfg, recipe, model, model, aux, optimizer, scheduler, trainable, torch.device("cpu"),
                          False, 1, False)
        step, metrics = 0, []
        model.train()
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for batch in loader:
                recipe.before_step(cfg, model, step, total)
                train_step(state, dict(batch))
                step += 1
            preds, labels = evaluate(model, self.eval_set, self.eval_collate, cfg.eval.batch_size,
                                     torch.device("cpu"), 0, 1, False)
            metrics.append(float(compute_metrics(self.task, preds, labels)[self.task.primary_metric]))
        return metrics

    def ensure_teacher(self) -> None:
        if self.teacher_dir is not None:
            return
        from torch.utils.data import DataLoader

        from methods import baselines, kd_lora
        from orchestrator.tasks import load_model

        start = time.perf_counter()
        from orchestrator.engine.run import teacher_config

        tcfg = teacher_config(self.cfg)
        model = baselines.prepare_fft(load_model(self.cfg.model, self.task))
        self._fit(tcfg, model, self.cfg.method.teacher_epochs)
        self.teacher_dir = self.work / f"teacher-{self.seed}"
        baselines.save_model(model, self.teacher_dir / "model")
        loader = DataLoader(self.train_set, batch_size=64, shuffle=False, collate_fn=self.train_collate)
        with torch.no_grad():
            self.teacher_logits = kd_lora.TeacherLogits.compute(model, loader, "cpu")
        self.teacher_seconds = time.perf_counter() - start

    def run(self, point: dict[str, Any]) -> dict[str, Any]:
        from methods import accounting
        from orchestrator.config.schema import with_values
        from orchestrator.engine.loop import build_model, deployable_model
        from orchestrator.recipes import get_recipe
        from orchestrator.spec.load import with_method_defaults

        key = json.dumps(point, sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        cfg = with_method_defaults(with_values(self.cfg, point))
        if any(aux.role == "teacher" for aux in get_recipe(cfg.method.name).auxiliary_models(cfg)):
            self.ensure_teacher()
        start = time.perf_counter()
        model = build_model(cfg, self.task, str(self.teacher_dir) if self.teacher_dir else None)
        metrics = self._fit(cfg, model, EPOCHS)
        params = accounting.count_params(deployable_model(cfg, copy.deepcopy(model)))["params"]
        self.train_seconds += time.perf_counter() - start
        self.cache[key] = {"point": point, "metrics": metrics, "params": params}
        print(f"[search] seed {self.seed} trained {len(self.cache)}: {point} -> {metrics}, {params:,} params",
              flush=True)
        return self.cache[key]


def base_params(model: str) -> int:
    from methods import accounting
    from orchestrator.tasks import get_task, load_model

    return accounting.count_params(load_model(model, get_task("glue/sst2")))["params"]


def curve(history: list[dict[str, Any]], reference: list[float]) -> list[dict[str, float]]:
    """Hypervolume of the full-budget trials after each trial, against cumulative epochs."""
    import numpy as np

    from orchestrator.base.pareto import hypervolume

    out, spent, done = [], 0, []
    for h in history:
        spent += h["epochs"]
        if h["full"]:
            done.append([h["metric"], h["params"]])
        hv = hypervolume(np.array(done), ["max", "min"], reference) if done else 0.0
        out.append({"epochs": spent, "hypervolume": hv})
    return out


def run_grid(trainer: Trainer) -> list[dict[str, Any]]:
    from orchestrator.spec.space import grid_points

    history = []
    for point in grid_points(trainer.cfg):
        r = trainer.run(point)
        history.append({"point": point, "epochs": EPOCHS, "full": True, "metric": r["metrics"][-1],
                        "params": r["params"]})
    return history


def run_optuna(trainer: Trainer, budget: int, *, sampler_name: str, asha_on: bool, rung_dir: Path) -> list[dict]:
    import functools

    import optuna

    from orchestrator.base.rungs import rung_epochs
    from orchestrator.engine import asha
    from orchestrator.search.tune import first_points
    from orchestrator.spec.space import sample_point

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg, seed = trainer.cfg, trainer.seed
    n = cfg.search.num_samples
    if sampler_name == "nsga2":  # as orchestrator.tune.make_searcher
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(4, n // 3)))
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    if sampler_name == "nsga2":
        for p in first_points(cfg, prefer_config=True):
            study.enqueue_trial(p)
    rungs = rung_epochs(cfg.search.grace_period, EPOCHS, cfg.search.reduction_factor) if asha_on else []
    space = functools.partial(sample_point, cfg=cfg)
    history, spent, i = [], 0, 0
    while spent < budget:
        trial = study.ask()
        point = space(trial)
        r = trainer.run(point)
        ran, full = EPOCHS, True
        for rung in rungs:
            if asha.record_and_decide(rung_dir, rung, f"t{i}", r["metrics"][rung - 1], cfg.search.reduction_factor):
                ran, full = rung, False
                break
        metric = r["metrics"][ran - 1]
        # As Ray's OptunaSearch does: a stopped trial is told with its last values.
        study.tell(trial, [metric, r["params"]])
        history.append({"point": point, "epochs": ran, "full": full, "metric": metric, "params": r["params"]})
        spent += ran
        i += 1
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-examples", type=int, default=128)
    parser.add_argument("--eval-examples", type=int, default=128)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "minilm-l3-h384")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--suffix", default="")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--merge", type=Path, nargs="+", help="combine results files of runs of single seeds "
                        "(e.g. run in parallel) into one report, then exit")
    args = parser.parse_args()
    if args.merge:
        merge(args)
        return

    torch.set_num_threads(args.threads)
    quiet_transformers()
    info = machine(torch.device("cpu"))
    reference = [0.5, float(base_params(str(args.model)))]
    per_seed = {}
    started = time.perf_counter()
    for seed in args.seeds:
        work = Path(tempfile.mkdtemp(prefix=f"orch-bench-search-{seed}-"))
        trainer = Trainer(args, seed, work)
        grid = run_grid(trainer)
        budget = sum(h["epochs"] for h in grid)
        rnd = run_optuna(trainer, budget, sampler_name="random", asha_on=False, rung_dir=work / "asha-random")
        opt = run_optuna(trainer, budget, sampler_name="nsga2", asha_on=True, rung_dir=work / "asha-nsga2")
        curves = {"grid": curve(grid, reference), "random": curve(rnd, reference),
                  "optuna+asha": curve(opt, reference)}
        grid_hv = curves["grid"][-1]["hypervolume"] or float("nan")  # 0 = no point beat the reference
        reached = {}
        for name, c in curves.items():
            hit = next((p["epochs"] for p in c if p["hypervolume"] >= grid_hv - 1e-12), None)
            reached[name] = {"epochs_to_grid_hv": hit, "fraction_of_grid_compute": hit / budget if hit else None,
                             "final_hv": c[-1]["hypervolume"], "final_hv_ratio_to_grid": c[-1]["hypervolume"] / grid_hv,
                             "hv_at_third": max((p["hypervolume"] for p in c if p["epochs"] <= budget / 3),
                                                default=0.0) / grid_hv}
        per_seed[seed] = {"budget_epochs": budget, "curves": curves, "reached": reached,
                          "histories": {"grid": grid, "random": rnd, "optuna+asha": opt},
                          "distinct_points_trained": len(trainer.cache), "teacher_seconds": trainer.teacher_seconds,
                          "train_seconds": trainer.train_seconds}
        print(f"[search] seed {seed}: " + ", ".join(
            f"{k} reaches grid HV at {v['fraction_of_grid_compute']}, final {v['final_hv_ratio_to_grid']:.3f} "
            f"(HV {v['final_hv']:.4g})"
            for k, v in reached.items()) + f"; load {load_average()}", flush=True)
        report(args, info, reference, per_seed, started)


def merge(args: argparse.Namespace) -> None:
    """One report from several single-seed results files (same arguments apart from --seeds)."""
    parts = [json.loads(Path(f).read_text()) for f in args.merge]
    per_seed = {int(k): v for part in parts for k, v in part["per_seed"].items()}
    first = parts[0]
    run_args = argparse.Namespace(**{**first["args"], "seeds": sorted(per_seed), "suffix": args.suffix,
                                     "out": args.out, "merge": None})
    info = first["machine"]
    info["load_average_end"] = [p["machine"].get("load_average_end") for p in parts]
    seconds = max(p["total_seconds"] for p in parts)
    commands = "; ".join(p["command"] for p in parts)
    report(run_args, info, first["reference"], per_seed, time.perf_counter() - seconds,
           command=f"{commands} (in parallel), then {command_line()}", keep_load=True)


def report(args: argparse.Namespace, info: dict[str, Any], reference: list[float], per_seed: dict[int, Any],
           started: float, command: str | None = None, keep_load: bool = False) -> None:
    """Write the tables for the seeds finished so far (called after each seed)."""
    if not keep_load:
        info["load_average_end"] = load_average()
    total_seconds = time.perf_counter() - started

    lines = [
        "Search efficiency on a cheap task: glue/sst2, MiniLM-L3 (pre-trained), "
        f"{args.train_examples} training / {args.eval_examples} validation examples, max_length 48, batch 32, "
        f"{EPOCHS} epochs; space {json.dumps(SPACE)} (24 points); objectives metric:max, params:min; "
        f"hypervolume against reference (accuracy 0.5, {int(reference[1]):,} params = the uncompressed model); "
        "compute = epochs trained; budget per strategy = the grid's (72 epochs); seeds "
        f"{list(per_seed)} of {args.seeds} finished (training seed and sampler seed). Trials trained in one process with the loop's "
        f"functions (no Ray); {total_seconds / 60:.1f} min in all.",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command or command_line()}`.",
        "",
        "| seed | strategy | compute to reach the grid's final HV (fraction of the grid's) | HV at 1/3 of the "
        "compute / grid's final | final HV / grid's final | full-budget trials | trials |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for seed, s in per_seed.items():
        for name, r in s["reached"].items():
            hist = s["histories"][name]
            frac = f"{r['fraction_of_grid_compute']:.2f}" if r["fraction_of_grid_compute"] else "not reached"
            lines.append(f"| {seed} | {name} | {frac} | {r['hv_at_third']:.3f} | {r['final_hv_ratio_to_grid']:.3f} "
                         f"| {sum(h['full'] for h in hist)} | {len(hist)} |")
    lines += ["", "Median over seeds:", "", "| strategy | compute to grid's HV (fraction) | HV at 1/3 compute / grid |"
              " final HV / grid |", "|---|---:|---:|---:|"]
    for name in ("grid", "random", "optuna+asha"):
        fr = [s["reached"][name]["fraction_of_grid_compute"] for s in per_seed.values()]
        med = statistics.median([f if f is not None else float("inf") for f in fr])
        fr_text = f"{med:.2f}" if med != float("inf") else "not reached in most seeds"
        lines.append(f"| {name} | {fr_text} (per seed {[round(f, 2) if f else None for f in fr]}) "
                     f"| {statistics.median(s['reached'][name]['hv_at_third'] for s in per_seed.values()):.3f} "
                     f"| {statistics.median(s['reached'][name]['final_hv_ratio_to_grid'] for s in per_seed.values()):.3f} |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    payload = {"benchmark": "search_efficiency", "command": command or command_line(), "args": vars(args), "machine": info,
               "space": SPACE, "reference": reference, "total_seconds": total_seconds,
               "per_seed": {str(k): v for k, v in per_seed.items()}}
    name = "search_efficiency" + (f"_{args.suffix}" if args.suffix else "")
    for p in write(name, payload, markdown, args.out):
        print("wrote", p)


if __name__ == "__main__":
    main()
