"""API tokens: what they look like, how they are hashed, and who may hold them (no database).

A token is `pom_` followed by 43 URL-safe characters (`secrets.token_urlsafe(32)`: 256 random
bits). The database keeps only its SHA-256 (hex) and its first 12 characters (`prefix`, e.g.
`pom_AbCdEfGh`), which identify it in listings and the audit log without revealing it.

Why SHA-256 and not bcrypt/scrypt/argon2: those are deliberately slow so that a stolen hash
of a *password* — a low-entropy secret a person chose — cannot be brute-forced. A token is
not a password: with 256 random bits, inverting its SHA-256 is out of reach however fast the
hash is, so slowness buys nothing, while every API request verifies a token and would pay
for it (bcrypt costs ~50-250 ms of CPU per check). A secret key (pepper) would add nothing
against brute force either, and would be one more secret to hand to every gateway.

The hash also keys the lookup (a unique index); the final comparison of the stored hash with
the computed one is constant-time (`hmac.compare_digest`).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

PREFIX = "pom_"
PREFIX_LEN = 12                 # "pom_" + 8 characters: shown, never enough to guess the rest
TOKEN_BYTES = 32
ADMIN_TOKEN_FILE = "admin-token"
MAX_TOKEN_LEN = 200             # anything longer is not one of ours: refused before hashing


class Role(StrEnum):
    ADMIN = "admin"             # everything, token management included
    SUPERVISOR = "supervisor"   # read everything, job control, run-time changes, the audit log
    INTEGRATION = "integration"  # read, create definitions and jobs, job control, metrics
    AGENT = "agent"             # the agent routes (its own state) only


ROLES = tuple(Role)


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's id, name, role, prefix and, for an agent, its agent."""
    token_id: int
    name: str
    role: Role
    prefix: str = ""
    agent_id: int | None = None


def may_act_as(principal: Principal, agent_id: int) -> bool:
    """Whether `principal` may act as agent `agent_id` (its desktop, its own agent routes): an
    agent token only as the agent it names; the other roles, whom the route's roles let in,
    as any agent."""
    return principal.role != Role.AGENT or (principal.agent_id is not None and principal.agent_id == agent_id)


@dataclass(frozen=True)
class NewToken:
    value: str                  # shown once, to whoever created it
    prefix: str
    hash: str


def hash_token(value: str) -> str:
    """The SHA-256 (hex) of a token, as stored in `api_tokens.token_hash`."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> NewToken:
    value = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    return NewToken(value, value[:PREFIX_LEN], hash_token(value))


def same_hash(stored: str, computed: str) -> bool:
    """Constant-time comparison of two token hashes."""
    return hmac.compare_digest(stored.encode(), computed.encode())


def plausible(value: str) -> bool:
    """A cheap check before any hashing or lookup: ours start with `pom_` and are short."""
    return value.startswith(PREFIX) and len(value) <= MAX_TOKEN_LEN and value.isascii()


# -- the admin token file -----------------------------------------------------------------------
def admin_token_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / ADMIN_TOKEN_FILE


def write_token_file(path: Path, value: str) -> None:
    """Write `value` to `path`, readable by its owner only (0600) from the first byte: a new
    file is created with that mode and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.chmod(tmp, 0o600)      # whatever the umask did
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_token_file(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return value or None


def find_token(env: dict[str, str] | None = None) -> str | None:
    """The token a client uses: `POM_TOKEN`, else `<POM_DATA_DIR>/admin-token` (default
    `.pom-data/admin-token`) if that file can be read."""
    env = os.environ if env is None else env
    if env.get("POM_TOKEN"):
        return env["POM_TOKEN"].strip()
    return read_token_file(admin_token_path(env.get("POM_DATA_DIR") or ".pom-data"))
