"""The model with a head for the task (load_model) and its tokenizer / image processor (load_processor).

transformers loads inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.tasks.registry import TaskSpec

if TYPE_CHECKING:
    import transformers

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _model_ref(name: str) -> str:
    """A local folder (checked) or something that looks like a hub id; ValueError naming `model`."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model: {name!r} has no config.json; give a Hugging Face model folder or a hub id")
        return str(path)
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise ValueError(f"model: local folder {name!r} does not exist; give an existing model folder or a "
                         "hub id like 'bert-base-uncased' or 'org/name'")
    return name


def _from_pretrained(loader: Any, name: str, what: str, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    ref = _model_ref(name)
    if trust_remote_code:
        warnings.warn(f"trust_remote_code: true: loading the {what} of {name!r} may run Python code from its "
                      "repository", UserWarning, stacklevel=3)
    try:
        # trust_remote_code always passed, False unless the config's trust_remote_code asks for it.
        return loader.from_pretrained(ref, trust_remote_code=bool(trust_remote_code), **kwargs)
    except OSError as err:  # transformers raises OSError for unknown ids, no network, missing files
        raise ValueError(f"model: could not load the {what} of {name!r} (not a local folder, or not "
                         f"reachable on the hub): {err}") from None


def load_model(model_name_or_path: str, task: TaskSpec, *, trust_remote_code: bool = False,
               **kwargs: Any) -> transformers.PreTrainedModel:
    """The model with a fresh head for the task: num_labels, id2label/label2id and problem_type.

    Text tasks: AutoModelForSequenceClassification (problem_type "regression" for STS-B); images:
    AutoModelForImageClassification. A checkpoint whose head has another size gets a new head
    (ignore_mismatched_sizes). kwargs go to from_pretrained and override these defaults. Weights are
    read from safetensors, or from .bin with torch.load(weights_only=True); `trust_remote_code` (the
    config key of that name) lets the repository run its own code, with a warning.
    """
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    head: dict[str, Any] = {
        "num_labels": task.num_labels,
        "problem_type": "regression" if task.is_regression else "single_label_classification",
        "ignore_mismatched_sizes": True,
        "weights_only": True,  # transformers' default; pinned so that no pickle is ever unpickled
    }
    if not task.is_regression:
        head["id2label"] = dict(enumerate(task.label_names))
        head["label2id"] = {name: i for i, name in enumerate(task.label_names)}
    loader = AutoModelForImageClassification if task.kind == "image" else AutoModelForSequenceClassification
    return _from_pretrained(loader, model_name_or_path, "model", trust_remote_code=trust_remote_code,
                            **{**head, **kwargs})


def load_processor(model_name_or_path: str, task: TaskSpec, *, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer (text tasks) or image processor (image tasks)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    if task.kind == "image":
        return _from_pretrained(AutoImageProcessor, model_name_or_path, "image processor",
                                trust_remote_code=trust_remote_code)
    tokenizer = _from_pretrained(AutoTokenizer, model_name_or_path, "tokenizer", trust_remote_code=trust_remote_code)
    # transformers builds a tokenizer with a handful of special tokens for a folder that has only
    # config.json: every word would become [UNK] and training would silently learn nothing.
    if len(tokenizer) < 100:
        raise ValueError(f"model: {model_name_or_path!r} has no usable tokenizer ({len(tokenizer)} tokens); "
                         "save the tokenizer files (tokenizer.json / vocab.txt) in that folder")
    return tokenizer
