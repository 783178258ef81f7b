"""What the orchestration costs (issue 10, item 1): Ray Train step time against a bare loop, start-up, sweep shares.

    python -m benchmarks.overhead [--reps 3] [--max-examples 320] [--epochs 3] [--skip-sweep]
                                  [--sweep-samples 4] [--sweep-max-examples 500]

1. Steady-state step time. The same training (search_spaces/quickstart.yaml's PC-LoRA point: MiniLM-L6,
   rank 8, sine decay, kd_weight 0.5, batch 32, max_length 64, SST-2 subset) runs (a) in a bare
   single-process loop (`bare_loop`: the body of orchestrator/loop.py's train_worker without Ray:
   the same dataset, sampler, model, loss, optimizer, schedule and torch threads) and (b) through
   `orchestrator.run.fit`, i.e. one Ray Train TorchTrainer worker running the real train_worker. Each
   run is its own process (as a Ray worker is); they alternate A B, B A, ... `--reps` times, and the
   medians of the last epoch's median step time (data loading included) are compared. The Ray run
   gets a fresh local Ray each time (shut down after), so Ray's daemons do not run during bare runs.
2. Start-up. From each Ray run: launch (process ready, before ray.init) to the worker's first step,
   split into Ray start + worker group (launch to worker start) and the worker's own set-up (data,
   model, accounting: worker start to first step). From the sweep: Tune's launch to the first step of
   the first trial, and the gap each later trial waits after the one before it ended.
3. The quickstart's shares. A smaller quickstart (`--sweep-samples` trials, `--sweep-max-examples`
   training examples, one trial at a time so that the shares add up) runs through
   orchestrator.tune.run_sweep; each trial's worker reports the seconds spent in training steps, in
   evaluation and in set-up; the rest of the wall time is Ray/Tune start-up, checkpoints, the final
   accounting and saving, MLflow logging and the sweep's outputs.
Writes benchmarks/results/overhead{,_<suffix>}.{json,md} (1, 2) and overhead_sweep{,_<suffix>}.{json,md} (3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, command_line, load_average, machine, write
from benchmarks.overhead_report import ab_figures, ab_markdown, sweep_markdown
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import TrialFiles

QUICKSTART = ROOT / "search_spaces" / "quickstart.yaml"


def bench_config(args: argparse.Namespace, results_dir: str, name: str, extra: list[str] | None = None) -> Any:
    from orchestrator.spec.load import load_config

    data = os.environ.get("ORCH_BENCH_DATA", str(ROOT.parent / "shared" / "data"))
    model = os.environ.get("ORCH_BENCH_MODEL", str(ROOT.parent / "shared" / "models" / "minilm-l6-h384"))
    sets = [f"name={name}", f"results_dir={results_dir}", f"data_dir={data}", f"model={model}",
            f"train.epochs={args.epochs}", f"train.max_examples={args.max_examples}",
            f"eval.max_examples={args.eval_examples}", "method.name=pc_lora", *(extra or [])]
    return load_config(QUICKSTART, sets)


# ---------------------------------------------------------------------------------------------
# (a) the bare loop and (b) the Ray Train run, each in a child process


def bare_loop(cfg: Any) -> dict[str, Any]:
    """train_worker's training loop without Ray (no evaluation, checkpoints or reports): the loop's
    own data loading, optimiser and `train_step`, so the comparison times the same step."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from orchestrator.engine.loop import (
        StepState,
        load_data,
        make_optimizer,
        seed_everything,
        to_device,
        train_step,
    )
    from orchestrator.recipes import get_recipe
    from orchestrator.spec.load import with_method_defaults
    from orchestrator.tasks import get_task

    launch = time.time()
    cfg = with_method_defaults(cfg)
    device = torch.device("cpu")
    torch.set_num_threads(max(1, cfg.resources.cpus_per_worker))
    task, recipe = get_task(cfg.task), get_recipe(cfg.method.name)
    seed_everything(cfg.train.seed)
    train_set = load_data(cfg, recipe, task, device)
    raw_model = recipe.build_model(cfg, task, None).to(device)
    sampler = DistributedSampler(train_set["train_set"], num_replicas=1, rank=0, shuffle=True, seed=cfg.train.seed)
    loader = DataLoader(train_set["train_set"], batch_size=cfg.train.batch_size, sampler=sampler,
                        collate_fn=train_set["train_collate"])
    total_steps = len(loader) * cfg.train.epochs
    optimizer, scheduler, trainable = make_optimizer(cfg, raw_model, total_steps)
    state = StepState(cfg, recipe, raw_model, raw_model, None, optimizer, scheduler, trainable, device, False, 1,
                      task.is_regression)
    first_step, step, epochs = None, 0, []
    raw_model.train()
    for epoch in range(cfg.train.epochs):
        sampler.set_epoch(epoch)
        epoch_start, seen = time.perf_counter(), 0
        step_times, step_start = [], epoch_start
        for batch in loader:
            first_step = first_step or time.time()
            recipe.before_step(cfg, raw_model, step, total_steps)
            batch = to_device(batch, device)
            seen += len(batch["idx"])
            train_step(state, batch)
            step += 1
            step_end = time.perf_counter()
            step_times.append(step_end - step_start)
            step_start = step_end
        seconds = time.perf_counter() - epoch_start
        epochs.append({"step_seconds_median": statistics.median(step_times), "examples_per_s": seen / seconds})
    return {"epochs": epochs, "launch_unix": launch, "first_step_unix": first_step}


def private_ray() -> dict[str, Any]:
    """ray.init arguments for a new local Ray of this process alone: `ray.init()` without an address joins
    the newest Ray on the machine (/tmp/ray/ray_current_cluster), e.g. another sweep's; its own temp dir
    keeps it from becoming that file's cluster for others."""
    return {"address": "local", "num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
            "_temp_dir": tempfile.mkdtemp(prefix="obr-")}


class CpuSampler:
    """CPU seconds of this process and all its descendants (the private Ray: GCS, raylet, agents,
    controller and worker actors), sampled every `period` s, so that the CPU that Ray's own processes
    take while the worker trains can be set against the worker's: a measure of overhead that other
    jobs on the machine do not distort (they change wall time, not these CPU seconds)."""

    def __init__(self, period: float = 1.0) -> None:
        import threading

        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            snap: dict[int, tuple[str, float]] = {}
            for proc in [me, *me.children(recursive=True)]:
                try:
                    with proc.oneshot():
                        name = " ".join(proc.cmdline()[:1]) or proc.name()
                        t = proc.cpu_times()
                        snap[proc.pid] = (name, t.user + t.system)
                except Exception:  # noqa: BLE001 - a process that ended between listing and reading
                    continue
            self.samples.append((time.time(), snap))
            self._stop.wait(period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds used in [start, end] by: the Ray Train worker, the driver, Ray's other processes."""
        def at(t: float) -> dict[int, tuple[str, float]]:
            before = [snap for ts, snap in self.samples if ts <= t]
            return before[-1] if before else {}

        first, last = at(start), at(end)
        out = {"train worker": 0.0, "driver (Tune/Train driver, MLflow)": 0.0, "Ray's other processes": 0.0}
        driver = os.getpid()
        for pid, (name, cpu) in last.items():
            delta = cpu - first.get(pid, (name, 0.0))[1]
            if "RayTrainWorker" in name:
                out["train worker"] += delta
            elif pid == driver:
                out["driver (Tune/Train driver, MLflow)"] += delta
            else:
                out["Ray's other processes"] += delta
        return out


def ray_run(cfg: Any, out_dir: Path) -> dict[str, Any]:
    import ray

    from orchestrator.engine.run import fit

    sampler = CpuSampler()
    launch = time.time()
    ray.init(**private_ray())
    ray_ready = time.time()
    try:
        metrics = fit(cfg, out_dir)
    finally:
        end = time.time()
        ray.shutdown()
        sampler.stop()
    # Training window: the worker's first step to its last report (metrics.json written).
    train_end = (out_dir / "metrics.json").stat().st_mtime
    cpu = {"training": sampler.cpu_between(metrics["first_step_unix"], train_end),
           "whole run": sampler.cpu_between(launch, end)}
    return {"launch_unix": launch, "ray_ready_unix": ray_ready, "metrics": metrics, "cpu_seconds": cpu}


def child(kind: str, args: argparse.Namespace, out: Path) -> None:
    results_dir = args.child_results
    if kind == "bare":
        # Ray runs its workers at niceness 15 (see the README); the bare loop gets the same priority, so that
        # other jobs on a shared machine slow both alike.
        os.nice(15 - os.nice(0))
    cfg = bench_config(args, results_dir, f"overhead-{kind}", ["tracking.uri=null"])
    result = bare_loop(cfg) if kind == "bare" else ray_run(cfg, Path(tempfile.mkdtemp(dir=results_dir)))
    out.write_text(json.dumps(result, default=str))


def run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [sys.executable, "-m", "benchmarks.overhead", "--child", kind, "--child-out", str(out),
           "--max-examples", str(args.max_examples), "--epochs", str(args.epochs),
           "--eval-examples", str(args.eval_examples), "--child-results", args.child_results]
    started, load_start = time.perf_counter(), load_average()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL if not args.verbose else None)
    result = json.loads(out.read_text())
    result["process_seconds"] = time.perf_counter() - started
    result["load_average"] = [load_start, load_average()]
    out.unlink()
    return result


# ---------------------------------------------------------------------------------------------
# the sweep


def sweep_shares(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from orchestrator.search.tune import run_sweep

    results_dir = tempfile.mkdtemp(prefix="orch-bench-sweep-")
    ns = argparse.Namespace(**{**vars(args), "max_examples": args.sweep_max_examples,
                               "eval_examples": args.sweep_eval_examples})
    cfg = bench_config(ns, results_dir, "bench-quickstart",
                       [f"search.num_samples={args.sweep_samples}", "search.max_concurrent_trials=1"])
    launch = time.time()
    ray.init(**private_ray())
    ray_ready = time.time()
    try:
        run_sweep(cfg)
    finally:
        ray.shutdown()
    end = time.time()
    return collect_sweep(args, Path(results_dir), launch, ray_ready, end)


def collect_sweep(args: argparse.Namespace, results_dir: Path, launch: float, ray_ready: float,
                  end: float) -> dict[str, Any]:
    """The time shares of a finished sweep, from the metrics.json of its trials and of the teacher."""
    runs = []
    paths = [*results_dir.glob(SweepFolder.trial_pattern(TrialFiles.METRICS)), *results_dir.glob("teachers/*/metrics.json")]
    for path in sorted(paths):
        m = json.loads(path.read_text())
        if "worker_start_unix" not in m:
            continue
        runs.append({"run": str(path.parent.relative_to(results_dir)), "method": m.get("method"),
                     "epochs": m.get("epoch"), "stopped_early": m.get("stopped_early"),
                     "worker_start_unix": m["worker_start_unix"], "first_step_unix": m["first_step_unix"],
                     "end_unix": path.stat().st_mtime, "train_seconds": m["train_seconds"],
                     "train_loop_seconds": m["train_loop_seconds"], "eval_seconds": m["eval_seconds"],
                     "setup_seconds": m["first_step_unix"] - m["worker_start_unix"]})
    runs.sort(key=lambda r: r["worker_start_unix"])
    for prev, run in zip([None, *runs[:-1]], runs, strict=True):
        run["wait_before_worker_seconds"] = run["worker_start_unix"] - (prev["end_unix"] if prev else ray_ready)
    wall = end - launch
    steps = sum(r["train_loop_seconds"] for r in runs)
    evals = sum(r["eval_seconds"] for r in runs)
    setup = sum(r["setup_seconds"] for r in runs)
    finish = sum(r["train_seconds"] - r["setup_seconds"] - r["train_loop_seconds"] - r["eval_seconds"] for r in runs)
    rest = wall - steps - evals - setup - finish
    return {"results_dir": str(results_dir), "launch_unix": launch, "ray_ready_unix": ray_ready, "end_unix": end,
            "config": {"num_samples": args.sweep_samples, "max_examples": args.sweep_max_examples,
                       "eval_max_examples": args.sweep_eval_examples, "epochs": args.epochs,
                       "max_concurrent_trials": 1},
            "wall_seconds": wall, "ray_init_seconds": ray_ready - launch,
            "first_step_after_launch_seconds": runs[0]["first_step_unix"] - launch if runs else None,
            "first_step_after_ray_ready_seconds": runs[0]["first_step_unix"] - ray_ready if runs else None,
            "shares": {"training steps": steps / wall, "evaluation": evals / wall,
                       "worker set-up (data, model, accounting)": setup / wall,
                       "checkpoints, final accounting, saving (in the worker)": finish / wall,
                       "outside the workers (Ray/Tune start-up, worker groups, MLflow, outputs)": rest / wall},
            "seconds": {"training steps": steps, "evaluation": evals, "worker set-up": setup,
                        "worker finish": finish, "outside the workers": rest},
            "runs": runs}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="A/B pairs (bare, Ray), alternating order")
    parser.add_argument("--max-examples", type=int, default=320, help="training examples of the A/B runs")
    parser.add_argument("--eval-examples", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true", help="only the A/B runs (results/overhead)")
    parser.add_argument("--skip-ab", action="store_true", help="only the sweep (results/overhead_sweep)")
    parser.add_argument("--sweep-samples", type=int, default=4)
    parser.add_argument("--sweep-max-examples", type=int, default=500)
    parser.add_argument("--sweep-eval-examples", type=int, default=872, help="872 = SST-2's whole validation split")
    parser.add_argument("--suffix", default="")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--child", choices=["bare", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-results", help=argparse.SUPPRESS)
    parser.add_argument("--recompute-sweep", nargs=2, metavar=("JSON", "RESULTS_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args, args.child_out)
        return

    import torch

    suffix = f"_{args.suffix}" if args.suffix else ""
    if not args.skip_ab:
        info = machine(torch.device("cpu"))
        markdown, payload = ab_report(args, info)
        for p in write("overhead" + suffix, payload, markdown, args.out):
            print("wrote", p)
    if not args.skip_sweep:
        info = machine(torch.device("cpu"))
        markdown, payload = sweep_report(args, info)
        for p in write("overhead_sweep" + suffix, payload, markdown, args.out):
            print("wrote", p)


def ab_report(args: argparse.Namespace, info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # One results folder for every A/B run, as for the runs of one user: the tokenised-data cache and the
    # MLflow database are made by the first run and reused (the medians leave that first run's cost out).
    args.child_results = tempfile.mkdtemp(prefix="orch-bench-overhead-")
    bare, ray_runs, order = [], [], []
    for rep in range(args.reps):
        for kind in (("bare", "ray") if rep % 2 == 0 else ("ray", "bare")):
            result = run_child(kind, args)
            (bare if kind == "bare" else ray_runs).append(result)
            order.append(kind)
            last = (result["epochs"][-1] if kind == "bare" else result["metrics"])
            print(f"[overhead] rep {rep} {kind}: last-epoch median step {last['step_seconds_median']:.4f} s, "
                  f"{last['examples_per_s']:.1f} ex/s, load {load_average()}", flush=True)
    figures = ab_figures(bare, ray_runs)
    info["load_average_end"] = load_average()
    markdown = ab_markdown(args, info, bare, ray_runs, figures)
    print(markdown)
    return markdown, {"benchmark": "overhead", "command": command_line(), "args": vars(args), "machine": info,
                      "order": order, "bare": bare, "ray": ray_runs, **figures}


def sweep_report(args: argparse.Namespace, info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if args.recompute_sweep:  # the tables again from a finished sweep's folder and the times in its JSON
        old = json.loads(Path(args.recompute_sweep[0]).read_text())
        s = old["sweep"]
        launch = s.get("launch_unix") or s["runs"][0]["first_step_unix"] - s["first_step_after_launch_seconds"]
        ray_ready = s.get("ray_ready_unix") or launch + s["ray_init_seconds"]
        sweep = collect_sweep(args, Path(args.recompute_sweep[1]), launch, ray_ready,
                              s.get("end_unix") or launch + s["wall_seconds"])
        info, command = old["machine"], old["command"]
    else:
        sweep = sweep_shares(args)
        info["load_average_end"] = load_average()
        command = command_line()
    markdown = sweep_markdown(sweep, info, command)
    print(markdown)
    return markdown, {"benchmark": "overhead_sweep", "command": command, "args": vars(args), "machine": info,
                      "sweep": sweep}


if __name__ == "__main__":
    main()
