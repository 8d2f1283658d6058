"""The course secret: what the hidden inputs are drawn from, held by the instructor alone.

Nothing shipped in the package decides the hidden inputs (students install the package, so they
could rebuild anything derived from it). The instructor creates a secret once per term,

    labsupport grade --init-secret            # writes ~/.config/labsupport/grading-secret (mode 600)

and the grader reads it from `--secret-file FILE`, else from the environment variable
LABSUPPORT_GRADING_SECRET, else from that default file. For Gradescope, put the file in the
autograder zip (see docs/grading.md). Without a secret the grader refuses to grade, except with
`--practice`, whose outputs say everywhere that they are not valid grades.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

__all__ = ["DEFAULT_SECRET_FILE", "ENV_VAR", "SecretMissing", "init_secret", "read_secret", "secret_id"]

ENV_VAR = "LABSUPPORT_GRADING_SECRET"
DEFAULT_SECRET_FILE = Path("~/.config/labsupport/grading-secret")
MIN_LENGTH = 16


class SecretMissing(ValueError):
    """No course secret was found: the message says how to create one."""


def init_secret(path: str | Path | None = None, *, force: bool = False) -> Path:
    """Write a new random secret to `path` (default ~/.config/labsupport/grading-secret), readable by its owner only."""
    path = Path(path or DEFAULT_SECRET_FILE).expanduser()
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists already; keep it for this term (every grade depends on it), "
                              "or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


def _check(secret: str, where: str) -> str:
    secret = secret.strip()
    if len(secret) < MIN_LENGTH:
        raise SecretMissing(f"the course secret in {where} is too short ({len(secret)} characters, at least "
                            f"{MIN_LENGTH}): create one with `labsupport grade --init-secret`")
    return secret


def read_secret(path: str | Path | None = None) -> str:
    """The course secret: from `path`, else $LABSUPPORT_GRADING_SECRET, else the default file."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise SecretMissing(f"--secret-file {p} does not exist: create it with `labsupport grade --init-secret {p}`")
        return _check(p.read_text(encoding="utf-8"), str(p))
    if os.environ.get(ENV_VAR):
        return _check(os.environ[ENV_VAR], f"${ENV_VAR}")
    default = DEFAULT_SECRET_FILE.expanduser()
    if default.is_file():
        return _check(default.read_text(encoding="utf-8"), str(default))
    raise SecretMissing(
        "no course secret: the hidden test inputs are drawn from a secret that only the instructor holds. "
        f"Create one with `labsupport grade --init-secret` (it writes {default}), or pass --secret-file FILE, "
        f"or set ${ENV_VAR}. To try the grader without one, use --practice (its scores are not valid grades).")


def secret_id(secret: str) -> str:
    """A short name for a secret that reveals nothing of it (to tell two terms' gradebooks apart)."""
    return hashlib.sha256(("labsupport-secret-id/" + secret).encode()).hexdigest()[:12]
