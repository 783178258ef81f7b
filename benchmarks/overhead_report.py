"""The overhead benchmark's figures and tables (benchmarks/overhead.py measures; this formats what it measured)."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks._common import command_line, machine_line


def ab_figures(bare: list[dict[str, Any]], ray_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Step times, examples/s and start-up of the bare and the Ray runs, and the overheads between them."""
    bare_step = [r["epochs"][-1]["step_seconds_median"] for r in bare]
    ray_step = [r["metrics"]["step_seconds_median"] for r in ray_runs]
    bare_eps = [r["epochs"][-1]["examples_per_s"] for r in bare]
    ray_eps = [r["metrics"]["examples_per_s"] for r in ray_runs]
    step_overhead = statistics.median(ray_step) / statistics.median(bare_step) - 1
    eps_overhead = statistics.median(bare_eps) / statistics.median(ray_eps) - 1
    startup = [{"launch_to_ray_ready": r["ray_ready_unix"] - r["launch_unix"],
                "ray_ready_to_worker_start": r["metrics"]["worker_start_unix"] - r["ray_ready_unix"],
                "worker_setup": r["metrics"]["first_step_unix"] - r["metrics"]["worker_start_unix"],
                "launch_to_first_step": r["metrics"]["first_step_unix"] - r["launch_unix"],
                "fit_wall": r["metrics"].get("wall_seconds")} for r in ray_runs]
    bare_startup = [r["first_step_unix"] - r["launch_unix"] for r in bare]
    return {"bare_step": bare_step, "ray_step": ray_step, "bare_eps": bare_eps, "ray_eps": ray_eps,
            "step_overhead": step_overhead, "examples_per_s_overhead": eps_overhead, "startup": startup,
            "bare_startup": bare_startup}


def ab_markdown(args: argparse.Namespace, info: dict[str, Any], bare: list[dict[str, Any]],
                ray_runs: list[dict[str, Any]], f: dict[str, Any]) -> str:
    bare_step, ray_step, bare_eps, ray_eps = f["bare_step"], f["ray_step"], f["bare_eps"], f["ray_eps"]
    step_overhead, eps_overhead = f["step_overhead"], f["examples_per_s_overhead"]
    startup, bare_startup = f["startup"], f["bare_startup"]

    def med(key: str) -> float:
        return statistics.median(s[key] for s in startup)

    lines = [
        "Orchestration overhead, CPU. A/B runs: quickstart's PC-LoRA point (MiniLM-L6, rank 8, sine, kd_weight "
        f"0.5, batch 32, max_length 64), {args.max_examples} SST-2 training examples, {args.epochs} epochs, 1 torch "
        f"thread (resources.cpus_per_worker), bare loop vs one Ray Train worker, {args.reps} pairs in alternating order.",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command_line()}`.",
        "",
        "| | bare loop (median) | Ray Train worker (median) | overhead |",
        "|---|---:|---:|---:|",
        f"| last-epoch median step time (s) | {statistics.median(bare_step):.4f} | {statistics.median(ray_step):.4f} "
        f"| {100 * step_overhead:+.1f} % |",
        f"| last-epoch examples/s | {statistics.median(bare_eps):.1f} | {statistics.median(ray_eps):.1f} "
        f"| {100 * eps_overhead:+.1f} % |",
        "",
        f"Per run, in order (bare / Ray step times): {[round(x, 4) for x in bare_step]} / "
        f"{[round(x, 4) for x in ray_step]}; 1-minute load average at each run's start: "
        f"{[r['load_average'][0][0] for r in bare]} / {[r['load_average'][0][0] for r in ray_runs]}.",
        "",
        "Start-up of a Ray Train run (median of the Ray runs): "
        f"ray.init {med('launch_to_ray_ready'):.1f} s, then TorchTrainer + worker group to the worker's start "
        f"{med('ray_ready_to_worker_start'):.1f} s, then the worker's set-up (data, model, accounting) "
        f"{med('worker_setup'):.1f} s: launch to first step {med('launch_to_first_step'):.1f} s "
        f"(the bare process: {statistics.median(bare_startup):.1f} s from its start to its first step).",
    ]
    return "\n".join(lines + cpu_lines(ray_runs)) + "\n"


def cpu_lines(ray_runs: list[dict[str, Any]]) -> list[str]:
    """CPU seconds of Ray's own processes and the driver against the worker's, per Ray run ([] if not measured)."""
    lines: list[str] = []
    cpu_rows = [r["cpu_seconds"]["training"] for r in ray_runs if "cpu_seconds" in r]
    if cpu_rows:
        extra = [(c["driver (Tune/Train driver, MLflow)"] + c["Ray's other processes"]) / c["train worker"]
                 for c in cpu_rows]
        lines += [
            "",
            "CPU seconds while the worker trained (its first step to its last report), per Ray run: what Ray's "
            "own processes and the driver took against the worker itself. Other jobs on the machine change "
            "wall times, not these CPU seconds, so this is the steadier measure of the overhead on a shared "
            "machine.",
            "",
            "| Ray run | train worker | driver | Ray's other processes | extra CPU / worker CPU |",
            "|---:|---:|---:|---:|---:|",
        ]
        others = "Ray's other processes"
        for i, (c, x) in enumerate(zip(cpu_rows, extra, strict=True)):
            lines.append(f"| {i} | {c['train worker']:.1f} | {c['driver (Tune/Train driver, MLflow)']:.1f} "
                         f"| {c[others]:.1f} | {100 * x:.1f} % |")
        lines.append(f"| median | | | | {100 * statistics.median(extra):.1f} % |")
    return lines


def sweep_markdown(sweep: dict[str, Any], info: dict[str, Any], command: str) -> str:
    c = sweep["config"]
    lines = [
        f"Smaller quickstart through orchestrator.tune.run_sweep: {c['num_samples']} trials (NSGA-II, ASHA at "
        f"epoch 2), {c['max_examples']} training examples, {c['eval_max_examples']} validation examples, "
        f"{c['epochs']} epochs, one trial at a time; wall {sweep['wall_seconds']:.0f} s. "
        f"Tune's launch (before ray.init) to the first training step of the first trial: "
        f"{sweep['first_step_after_launch_seconds']:.1f} s ({sweep['first_step_after_ray_ready_seconds']:.1f} s "
        "after ray.init; the first KD-LoRA trial also fine-tunes the teacher once).",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command}`.",
        "",
        "| share of the sweep's wall time | seconds | share |",
        "|---|---:|---:|",
    ]
    for (name, share), seconds in zip(sweep["shares"].items(), sweep["seconds"].values(), strict=True):
        lines.append(f"| {name} | {seconds:.1f} | {100 * share:.1f} % |")
    lines += ["", "| run | method | epochs | wait before the worker started (s) | worker set-up (s) | steps (s) "
              "| eval (s) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in sweep["runs"]:
        lines.append(f"| {r['run']} | {r['method']} | {r['epochs']} | {r['wait_before_worker_seconds']:.1f} "
                     f"| {r['setup_seconds']:.1f} | {r['train_loop_seconds']:.1f} | {r['eval_seconds']:.1f} |")
    return "\n".join(lines) + "\n"
