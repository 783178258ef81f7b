"""orchestrator.run's start-up of a local Ray, without starting one."""

from __future__ import annotations

import pytest

from orchestrator import run
from orchestrator.config import Config


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
