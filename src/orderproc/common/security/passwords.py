"""Password hashing (Argon2id, with bcrypt verified for migration) in a bounded thread pool, and
the password policy that new passwords must pass (docs/architecture.md, "Security")."""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Literal, TypeVar

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError

from orderproc.errors import ServerBusy, WeakPassword

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "HashProfile",
    "PasswordHasher",
    "VerifyResult",
    "check_password_policy",
]

HashProfile = Literal["owasp", "fast-insecure-for-tests"]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt only ever looked at the first 72 bytes; legacy hashes were made that way.
_BCRYPT_MAX_BYTES = 72

_T = TypeVar("_T")


def _argon2_hasher(profile: HashProfile) -> argon2.PasswordHasher:
    if profile == "owasp":
        return argon2.PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
    # The cheapest parameters argon2 accepts (memory must be at least 8 KiB per lane).
    return argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    needs_rehash: bool


class PasswordHasher:
    """Hashes and verifies off the event loop; refuses work beyond `workers + queue` jobs."""

    def __init__(self, profile: HashProfile, *, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be at least 1 and queue at least 0")
        self._argon2 = _argon2_hasher(profile)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password-hash")
        self._admitted = threading.BoundedSemaphore(workers + queue)
        # Verifying against this costs an unknown user the same work as a known one.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._run(self._argon2.hash, password)

    async def verify(self, password: str, encoded: str | None) -> VerifyResult:
        """Never raises for a bad hash: anything unverifiable is simply not `ok`."""
        return await self._run(self._verify_now, password, encoded)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _run(self, work: Callable[..., _T], *args: object) -> _T:
        if not self._admitted.acquire(blocking=False):
            raise ServerBusy("Too many password checks are running; retry shortly.")
        try:
            job = self._pool.submit(work, *args)
        except BaseException:
            self._admitted.release()
            raise
        # Released when the job really ends, even if the awaiting request was cancelled.
        job.add_done_callback(lambda _: self._admitted.release())
        return await asyncio.wrap_future(job)

    def _verify_now(self, password: str, encoded: str | None) -> VerifyResult:
        if encoded is None:
            self._argon2_matches(password, self._dummy_hash)
            return VerifyResult(ok=False, needs_rehash=False)
        if encoded.startswith(_BCRYPT_PREFIXES):
            ok = _bcrypt_matches(password, encoded)
            return VerifyResult(ok=ok, needs_rehash=ok)
        ok = self._argon2_matches(password, encoded)
        return VerifyResult(ok=ok, needs_rehash=ok and self._argon2.check_needs_rehash(encoded))

    def _argon2_matches(self, password: str, encoded: str) -> bool:
        try:
            return self._argon2.verify(encoded, password)
        except (VerificationError, InvalidHashError, ValueError):
            return False


def _bcrypt_matches(password: str, encoded: str) -> bool:
    try:
        secret = password.encode()[:_BCRYPT_MAX_BYTES]
        return bcrypt.checkpw(secret, encoded.encode())
    except ValueError:
        return False


def check_password_policy(password: str, *, username: str, email: str) -> None:
    """Raise `WeakPassword` unless `password` is acceptable for this user.

    The rules (docs/security.md, "Input and roles"), on the password NFKC-normalised and
    case-folded: 8 to 128 characters; not containing the username; not the email's local part;
    not in the packaged common list, neither whole nor with the digits and symbols at its ends
    stripped (`Password123!` is `password`); not one unit repeated (`alice1alice1`) unless the
    unit alone would pass."""
    length = len(unicodedata.normalize("NFC", password))
    if length < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if length > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    folded = unicodedata.normalize("NFKC", password).casefold()
    name = username.casefold()
    if name and name in folded:
        raise WeakPassword("The password must not contain the username.")
    local_part = email.partition("@")[0].casefold()
    if local_part and local_part in (folded, letter_core(folded)):
        raise WeakPassword("The password must not be the first part of the email address.")
    if is_common(folded):
        raise WeakPassword("This password is too common; choose a less guessable one.")
    unit = repeated_unit(folded)
    if unit is not None and (len(unit) < MIN_PASSWORD_LENGTH or is_common(unit)):
        raise WeakPassword(
            "The password must not be a short or common piece repeated; choose a longer one."
        )


def letter_core(folded: str) -> str:
    """`folded` without the digits, symbols and spaces at either end: `password123!` and
    `!!password` are `password`."""
    start, end = 0, len(folded)
    while start < end and not folded[start].isalpha():
        start += 1
    while end > start and not folded[end - 1].isalpha():
        end -= 1
    return folded[start:end]


def repeated_unit(folded: str) -> str | None:
    """The shortest piece that `folded` is two or more copies of (`alice1` for
    `alice1alice1`), or None."""
    period = (folded + folded).find(folded, 1)
    return folded[:period] if 0 < period < len(folded) else None


def is_common(folded: str) -> bool:
    """In the packaged list, whole or by its letter core (the list's entries are compared the
    same way, so `monkey1` in the list also refuses `Monkey!!`)."""
    common, cores = _common_passwords()
    return folded in common or letter_core(folded) in cores


@functools.cache
def _common_passwords() -> tuple[frozenset[str], frozenset[str]]:
    """The packaged list (its header names the source and licence), case-folded, and the
    non-empty letter cores of its entries."""
    listing = resources.files(__package__).joinpath("common_passwords.txt")
    lines = listing.read_text(encoding="utf-8").splitlines()
    common = frozenset(line.casefold() for line in lines if line and not line.startswith("#"))
    cores = frozenset(core for core in map(letter_core, common) if core)
    return common, cores
