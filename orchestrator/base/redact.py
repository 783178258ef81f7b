"""Secrets kept out of what we print, write and log: passwords in URIs, token query parameters, and the
values of secret-looking environment variables.

Used on everything a user or a log can read: the resolved config (`--dry-run`, config.yaml, sweep.yaml),
MLflow params and error messages. The unredacted values stay in memory and are what connections use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
# Environment variables whose values are secrets: HF_TOKEN, MLFLOW_TRACKING_PASSWORD, AWS_SECRET_ACCESS_KEY, ...
SECRET_ENV_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
# Shorter values ("1", "true", a region name) are too common in ordinary text to be replaced everywhere.
MIN_SECRET_LENGTH = 8

# scheme://user:password@host -> scheme://user:***@host. RFC 3986 wants '/' and '@' percent-encoded in a
# password, but people paste them raw (postgresql://bob:Pg/Secret99@db, http://alice:p@ss@host): the secret
# runs to the last '@' of the URI, so no part of it shows. A port (host:8080/...) is not a password.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):(?!\d+(?:[/?#\s]|$))(?P<secret>\S+)@")
# ?token=..., &password=..., ;api_key=..., X-Amz-Signature=..., Azure SAS sig=...
_QUERY = re.compile(
    r"(?P<head>[?&;](?:[^=&;#\s]*(?:token|password|passwd|secret|key|auth|credential|signature)"
    r"[^=&;#\s]*|sig)=)(?P<secret>[^&;#\s]+)",
    re.IGNORECASE)


def _environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """A snapshot of os.environ. Reading it races with threads that delete variables (MLflow's telemetry
    drops _MLFLOW_TELEMETRY_SESSION_ID): the key list is taken, then a key is gone -> KeyError. Seen on the
    GPU (results/gpu/fidelity2/README.md): one trial of 29 failed that way."""
    for _ in range(10):
        try:
            return dict(environ)
        except KeyError:
            continue
    return {k: v for k in list(environ) if (v := environ.get(k)) is not None}


def _secret_env_values() -> list[str]:
    values = {v for k, v in _environment().items()
              if any(word in k.upper() for word in SECRET_ENV_WORDS) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)  # longest first: a value containing another is masked whole


def redact(text: str) -> str:
    """`text` with URI passwords, secret query parameters and secret environment values replaced by ***."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in _secret_env_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_uri(uri: str | None) -> str | None:
    """A tracking (or any) URI fit to print: `http://user:***@host/?token=***`; None stays None."""
    return None if uri is None else redact(uri)


def redact_value(value: Any) -> Any:
    """`redact` applied to every string inside nested dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


# A tracking URI holding a secret travels to trials redacted (Tune pickles a trial's arguments and its searcher
# into tune/*.pkl and Ray's session folder); the real one stays in the driver's environment, which the local Ray
# it starts (and so every trial and worker) inherits, and `reveal_uri` puts it back where a connection is made.
TRACKING_URI_VAR = "ORCH_TRACKING_URI"
STORAGE_URL_VAR = "ORCH_OPTUNA_STORAGE"  # the same for an Optuna storage URL (orchestrator/search/optuna_search.py)


def conceal_uri(uri: str | None, variable: str = TRACKING_URI_VAR) -> str | None:
    """`uri` redacted for what is written or pickled; the real one kept in this process's environment."""
    shown = redact_uri(uri)
    if uri and shown != uri:
        os.environ[variable] = uri
    return shown


def reveal_uri(uri: str | None, variable: str = TRACKING_URI_VAR) -> str | None:
    """The real URI behind one `conceal_uri` returned (when this process or its parent concealed it), else `uri`."""
    if uri and MASK in uri:
        real = os.environ.get(variable)
        if real and redact_uri(real) == uri:
            return real
    return uri
