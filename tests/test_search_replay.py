"""benchmarks/search_replay.py on a hand-made table whose answers are known (issue 35), and on the recorded 48-point
grid when it is here: the replay's figures are only as good as these properties.

The tiny table: PC-LoRA at four ranks, 2 epochs, objectives metric:max and params_no_embeddings:min, reference
(0, 200). Rank 8 dominates every other point, so the hypervolume share is exactly 1 from the moment it finishes
and below 0.9 before (the others together make 35 of its 135). In the grid's own order (4, 16, 8, 32) with one
trial at a time, each scheduler's compute to 90 % can be counted by hand (seconds in brackets):
    none:    r4 (5+5), r16 (20+20), r8 (10+10): reached at 70 of the table's 77
    ASHA:    r8's first epoch (0.05) is below the median of r4's and r16's (0.2, 0.4): stopped at the rung, never reached
    MO-ASHA: r16 (0.4, 150) is second of two at rung 1 and stops (crowding ties, arrival breaks them); r8 (0.05, 50)
             is second of three, kept (the first ⌈3/2⌉ = 2 go on): reached at 10 + 20 + 20 = 50
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from benchmarks import search_replay as R
from benchmarks.search_report import quartiles
from benchmarks.search_table import (
    GRID_CONFIG,
    GRID_DIR,
    Record,
    Table,
    grid_order,
    load_table,
    point_key,
    replay_config,
)
from orchestrator.base.pareto import hypervolume
from orchestrator.spec.load import load_config

# method.name is searched (one value) so that make_searcher seeds its first point from the config, as a sweep does
SPACE = {"method.name": {"choice": ["pc_lora"]}, "method.rank": {"choice": [4, 16, 8, 32]}}
CONFIG = {"name": "tiny", "task": "glue/stsb", "model": "bert-base-uncased", "data_dir": None,
          "method": {"name": "pc_lora", "rank": 8}, "train": {"epochs": 2, "seed": 0},
          "search": {"sampler": "random", "scheduler": "none", "objectives": ["metric:max", "params_no_embeddings:min"]},
          "space": SPACE, "tracking": {"uri": None}}
# rank: (per-epoch metrics, per-epoch seconds, final objectives or None for diverged, size)
POINTS = {4: ((0.2, 0.3), (5.0, 5.0), (0.3, 100.0), 100.0),
          16: ((0.4, 0.4), (20.0, 20.0), (0.4, 150.0), 150.0),
          8: ((0.05, 0.9), (10.0, 10.0), (0.9, 50.0), 50.0),
          32: ((0.0,), (7.0,), None, 200.0)}   # diverged in its first epoch
COMPUTE = 77.0
BEST = 0.9 * (200.0 - 50.0)


def tiny_table() -> Table:
    records = {(("method.name", "pc_lora"), ("method.rank", r)): Record(m, s, f, (size,)) for r, (m, s, f, size) in POINTS.items()}
    return Table(records, ("metric", "params_no_embeddings"), ("max", "min"), 2, (0.0, 200.0), COMPUTE, BEST, "tiny")


@pytest.fixture
def cfg():
    return load_config(None, [], base=CONFIG)


# By hand, grid order r4, r16, r8, r32, one worker, one rung at epoch 1 (η 2): without stopping r4 ends at 10 s, r16
# at 50, r8 (the dominant point) at 70. ASHA stops r8 at its rung (0.05 below the median of r4's 0.2 and r16's 0.4):
# never. MO-ASHA keeps r16 (at its rung nothing dominates (0.4, 150): a better metric than r4's, more parameters)
# and r8 (the smallest): the same 70 s as without stopping on this table.
@pytest.mark.parametrize("scheduler, reached", [("none", 70.0), ("asha", None), ("mo_asha", 70.0)])
def test_the_grid_in_its_order_reaches_the_front_when_the_counting_by_hand_says(cfg, tmp_path: Path, scheduler: str,
                                                                               reached: float | None) -> None:
    table = tiny_table()
    curve = R.replay(table, cfg, "grid", R.Rule(scheduler, workers=1), None, COMPUTE, tmp_path)
    assert R.compute_to_reach(curve, 0.90, BEST) == reached
    assert R.compute_to_reach(curve, 0.95, BEST) == reached  # one point makes the front: 90 % and 95 % at once
    final = R.share_at(curve, COMPUTE, BEST)
    assert final == (1.0 if reached else pytest.approx(35.0 / BEST))  # exactly 1: the dominant point alone
    run = R.summarise(curve, table)
    assert run.reach == ((None, None) if reached is None else (reached / COMPUTE, reached / COMPUTE))
    assert run.shares[R.BUDGETS.index(1.0)] == final
    assert run.shares[R.BUDGETS.index(0.25)] == pytest.approx(30.0 / BEST)  # r4 alone by 19.25 s


def test_a_shuffled_grid_pays_for_every_point_before_the_dominant_one(cfg, tmp_path: Path) -> None:
    table = tiny_table()
    for seed in range(4):
        order = [p["method.rank"] for p in grid_order(cfg, seed)]
        before = order[: order.index(8)]
        expected = sum(sum(POINTS[r][1]) for r in before) + 20.0
        curve = R.replay(table, cfg, "grid", R.Rule("none", workers=1), seed, COMPUTE, tmp_path / str(seed))
        assert R.compute_to_reach(curve, 0.9, BEST) == expected


def test_the_reach_figures_and_their_quantiles() -> None:
    curve = [(10.0, 30.0), (50.0, 130.0), (60.0, 135.0)]
    assert R.compute_to_reach(curve, 0.90, 135.0) == 50.0    # 130 ≥ 121.5
    assert R.compute_to_reach(curve, 0.97, 135.0) == 60.0    # 130 < 130.95
    assert R.compute_to_reach(curve, 1.0, 136.0) is None
    assert R.share_at(curve, 49.9, 135.0) == pytest.approx(30 / 135)
    # seeds that never reached a target count as inf: the median is past the budget when half of them did not
    assert quartiles([0.1, 0.2, 0.3, 0.4]) == (0.1, 0.2, 0.3)
    assert quartiles([0.1, math.inf, math.inf, 0.2]) == (0.1, 0.2, math.inf)
    assert quartiles([0.1, math.inf, math.inf, math.inf])[1] == math.inf


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2", "nsga3", "gp"])
def test_every_sampler_draws_table_points_and_starts_at_the_configs_own(cfg, tmp_path: Path, sampler: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    table, drawn, original = tiny_table(), [], R.suggester

    def counting(*args):
        suggest, complete = original(*args)
        return (lambda trial_id: drawn.append(suggest(trial_id)) or drawn[-1]), complete

    monkeypatch.setattr(R, "suggester", counting)
    curve = R.replay(table, cfg, sampler, R.Rule("mo_asha", workers=1), 0, 3 * COMPUTE, tmp_path)
    # make_searcher's first point is the config's own (rank 8, the dominant one): reached after its 20 s
    assert drawn[0] == {"method.name": "pc_lora", "method.rank": 8}
    assert R.compute_to_reach(curve, 0.95, BEST) == 20.0
    # and the sampler went on drawing points of the table until three times its compute was spent
    assert len(drawn) >= 6 and all(point_key(p) in table.records for p in drawn)
    assert load_config(None, [f"search.sampler={sampler}"], base=CONFIG).search.sampler == sampler


def write_sweep(root: Path, ranks: list[int]) -> None:
    """A sweep folder as the sweep writes it: trials.csv and each trial's epochs.jsonl."""
    rows = []
    for i, rank in enumerate(ranks):
        metrics, seconds, final, size = POINTS[rank]
        trial = root / "trials" / f"t{i}"
        trial.mkdir(parents=True)
        times = [100.0 + sum(seconds[: k + 1]) for k in range(len(seconds))]
        trial.joinpath("epochs.jsonl").write_text("".join(
            json.dumps({"epoch": k + 1, "time": t, "metric": m}) + "\n" for k, (t, m) in enumerate(zip(times, metrics, strict=True))))
        rows.append(f"t{i},{'diverged' if final is None else 'complete'},\"method.name,method.rank\",pc_lora,{rank},"
                    f"{'' if final is None else final[0]},{size if final else ''},200,{sum(seconds)}")
    root.joinpath("trials.csv").write_text("trial_id,status,searched,method.name,method.rank,metric,params_no_embeddings,"
                                           "base_params_no_embeddings,train_seconds\n" + "\n".join(rows) + "\n")


def test_the_command_reads_a_table_of_two_sweep_folders_and_writes_its_outputs(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "space": {"method.name": {"grid": ["pc_lora"]},
                                                          "method.rank": {"grid": [4, 16, 8, 32]}}}))
    write_sweep(tmp_path / "a", [4, 16])
    write_sweep(tmp_path / "b", [8, 32])
    cfg = replay_config(config)
    table = load_table(cfg, [tmp_path / "a", tmp_path / "b"], "tiny")
    assert table.records == tiny_table().records and table.compute == COMPUTE and table.best == BEST
    with pytest.raises(ValueError, match="2 of the space.s 4 points are not in the table"):
        load_table(cfg, [tmp_path / "a"], "half")  # a searcher could draw a point the table lacks
    runs = R.main(["--config", str(config), "--table", str(tmp_path / "a"), str(tmp_path / "b"), "--seeds", "2",
                   "--workers", "1", "--strategies", "grid", "random", "--schedulers", "none", "--out",
                   str(tmp_path / "out"), "--name", "tiny", "--source", "the tiny table"])
    assert [r.reach for r in runs["random+none"]] == [(20 / COMPUTE, 20 / COMPUTE)] * 2  # the config's point first
    md = (tmp_path / "out" / "tiny.md").read_text()
    assert "the tiny table (4 points, 2 epochs each" in md and "| random+none | " in md
    saved = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert saved["hypervolume"] == BEST and len(saved["runs"]["grid+none"]) == 2
    assert (tmp_path / "out" / "tiny.png").stat().st_size > 0


@pytest.mark.skipif(not (GRID_DIR / "trials.csv").is_file(), reason="the recorded grid is not here")
def test_the_recorded_grid_replays_to_its_own_front(tmp_path: Path) -> None:
    cfg = replay_config(GRID_CONFIG)
    table = load_table(cfg, [GRID_DIR], "grid")
    assert len(table) == 48 and sum(r.final is not None for r in table.records.values()) >= 40
    assert table.best == hypervolume([r.final for r in table.records.values() if r.final], ["max", "min"],
                                     list(table.reference))
    curve = R.replay(table, cfg, "grid", R.Rule("none", workers=4), 0, table.compute, tmp_path / "none")
    assert len(curve) == sum(r.final is not None for r in table.records.values())  # every point once, to the end
    assert R.share_at(curve, table.compute, table.best) == 1.0 and curve[-1][0] == pytest.approx(table.compute)
    stopped = R.replay(table, cfg, "grid", R.Rule("mo_asha", workers=4), 0, table.compute, tmp_path / "mo")
    assert len(stopped) < len(curve) and stopped[-1][0] < table.compute  # stopped trials cost less than the grid


def test_the_points_the_hypervolume_rests_on() -> None:
    """Rank 8 dominates the other points: without it the table keeps only r4's and r16's 35 of 135; the others
    hold nothing alone. The report says so."""
    from benchmarks.search_report import resting_points
    from benchmarks.search_table import contributions

    held = contributions(tiny_table())
    assert [key for _, key in held] == [(("method.name", "pc_lora"), ("method.rank", 8))]
    assert held[0][0] == pytest.approx(1 - 35 / 135)
    assert "1 of the 4 points" in resting_points(tiny_table()) and "rank=8: 74.1%" in resting_points(tiny_table())


def test_brackets_keep_their_own_rung_records(cfg, tmp_path: Path) -> None:
    """Two brackets on the 2-epoch table: the first compares at epoch 1, the second never. In the grid's order the
    trial ids sNone-0..3 fall in brackets 0, 1, 0, 0 (orchestrator.base.rungs.trial_rungs), so r16 runs to the end
    unrecorded and r8 is judged against r4 alone; one bracket records all three."""
    from orchestrator.base.rungs import trial_rungs

    assert [trial_rungs(f"sNone-{i}", 1, 2, 2.0, 2)[0] for i in range(4)] == [0, 1, 0, 0]

    def recorded(brackets: int) -> list[str]:
        rung_dir = tmp_path / str(brackets)
        R.replay(tiny_table(), cfg, "grid", R.Rule("asha", workers=1, brackets=brackets), None, COMPUTE, rung_dir)
        assert not (rung_dir / "bracket_1").exists()  # the second bracket has no rung
        return [json.loads(line)["trial_id"] for line in (rung_dir / "rung_1.jsonl").read_text().splitlines()]

    assert recorded(1) == ["sNone-0", "sNone-1", "sNone-2"]  # r32 diverged in its first epoch: never recorded
    assert recorded(2) == ["sNone-0", "sNone-2"]


def test_a_table_with_no_hypervolume_rests_on_no_point() -> None:
    """Every point at or below the reference (best 0): nothing to share, and no division by zero."""
    from benchmarks.search_table import contributions

    flat = tiny_table()
    records = {k: Record(r.metrics, r.seconds, (0.0, 200.0) if r.final else None, r.sizes) for k, r in flat.records.items()}
    empty = Table(records, flat.objectives, flat.directions, flat.epochs, flat.reference, flat.compute, 0.0, "flat")
    assert contributions(empty) == []
