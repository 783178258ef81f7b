"""orchestrator.run's start-up of a local Ray, without starting one."""

from __future__ import annotations

import pytest

from orchestrator.config.schema import Config
from orchestrator.engine import run


class FakeRay:
    def __init__(self, failures: int, message: str = "The current node timed out during startup.") -> None:
        self.failures, self.message = failures, message
        self.inits = self.shutdowns = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise Exception(self.message)

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def fake_ray(monkeypatch):
    import ray

    def install(failures: int, message: str = "The current node timed out during startup.") -> FakeRay:
        fake = FakeRay(failures, message)
        for name in ("is_initialized", "init", "shutdown"):
            monkeypatch.setattr(ray, name, getattr(fake, name))
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        monkeypatch.setattr(run.reaper, "watch", lambda pid: None)  # no real Ray processes to watch
        return fake

    return install


def test_a_local_ray_that_misses_its_startup_window_is_started_again(fake_ray, capsys):
    fake = fake_ray(failures=2)
    run.ensure_ray(Config(name="s"))
    assert (fake.inits, fake.shutdowns) == (3, 2)
    assert "starting it again" in capsys.readouterr().out


def test_a_local_ray_that_never_starts_raises_after_the_last_attempt(fake_ray):
    fake = fake_ray(failures=run.LOCAL_RAY_START_ATTEMPTS)
    with pytest.raises(Exception, match="timed out during startup"):
        run.ensure_ray(Config(name="s"))
    assert fake.inits == run.LOCAL_RAY_START_ATTEMPTS


def test_other_start_errors_are_not_retried(fake_ray):
    fake = fake_ray(failures=1, message="object store: not enough memory")
    with pytest.raises(Exception, match="not enough memory"):
        run.ensure_ray(Config(name="s"))
    assert fake.inits == 1


def test_one_worker_on_a_local_ray_trains_in_the_trial_process(monkeypatch) -> None:
    """resources.trainer: auto = the Tune trial's own process for one worker on a local Ray (it then asks Ray
    for the worker's CPUs itself); a TorchTrainer for DDP or on a cluster (RAY_ADDRESS), whose trial function
    holds no CPU and stays on the head."""
    from orchestrator.config.schema import with_values
    from orchestrator.search.tune import HEAD_RESOURCE, trial_resources

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = run.resolve_trainer(Config())
    assert local.resources.trainer == "trial"
    assert trial_resources(with_values(local, {"resources.cpus_per_worker": 2}), gpu=False) == {"cpu": 2, "gpu": 0}
    assert trial_resources(local, gpu=True) == {"cpu": 1, "gpu": 1.0}
    ddp = run.resolve_trainer(with_values(Config(), {"resources.workers": 2}))
    assert ddp.resources.trainer == "torch_trainer"
    assert trial_resources(ddp, gpu=True) == {"cpu": 0, "memory": 1, HEAD_RESOURCE: 0.001}
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert run.resolve_trainer(Config()).resources.trainer == "torch_trainer"
    forced = with_values(Config(), {"resources.trainer": "trial"})
    assert run.resolve_trainer(forced).resources.trainer == "trial"  # what the user chose stays


def test_trial_trainer_with_several_workers_is_refused() -> None:
    from orchestrator.config.schema import ConfigError
    from orchestrator.spec.load import load_config
    from tests.conftest import REPO

    with pytest.raises(ConfigError, match=r"resources.trainer: trial .* resources.workers is 2; set resources.trainer: "
                                          "torch_trainer"):
        load_config(REPO / "search_spaces" / "quickstart.yaml", ["resources.workers=2", "resources.trainer=trial"])
    with pytest.raises(ConfigError, match="resources.trainer"):
        load_config(REPO / "search_spaces" / "quickstart.yaml", ["resources.trainer=ray"])


def test_group_by_length_gets_its_own_teacher() -> None:
    """A KD-LoRA teacher trained on length-grouped batches is another teacher; without the option the key
    (and every teacher cached before it existed) is unchanged."""
    from orchestrator.config.schema import with_values

    cfg = with_values(Config(), {"method.name": "kd_lora"})
    grouped = with_values(cfg, {"train.group_by_length": True})
    assert run.teacher_key(grouped) != run.teacher_key(cfg)
    assert run.teacher_key(cfg) == run.teacher_key(with_values(cfg, {"train.group_by_length": False}))
