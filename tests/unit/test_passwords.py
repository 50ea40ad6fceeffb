from __future__ import annotations

import asyncio
from collections.abc import Iterator
from importlib import resources

import argon2
import bcrypt
import pytest

from orderproc.common.security.passwords import (
    MAX_PASSWORD_LENGTH,
    PasswordHasher,
    VerifyResult,
    check_password_policy,
)
from orderproc.errors import ServerBusy, WeakPassword

PASSWORD = "correct horse battery staple"


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher("fast-insecure-for-tests", workers=2, queue=4)
    yield hasher
    hasher.close()


@pytest.fixture
def owasp_hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher("owasp", workers=1, queue=0)
    yield hasher
    hasher.close()


class TestHashAndVerify:
    async def test_a_hashed_password_verifies(self, hasher: PasswordHasher) -> None:
        encoded = await hasher.hash(PASSWORD)

        assert await hasher.verify(PASSWORD, encoded) == VerifyResult(ok=True, needs_rehash=False)

    async def test_a_wrong_password_does_not_verify(self, hasher: PasswordHasher) -> None:
        encoded = await hasher.hash(PASSWORD)

        result = await hasher.verify("correct horse battery stapler", encoded)

        assert result == VerifyResult(ok=False, needs_rehash=False)

    async def test_the_same_password_hashes_differently_each_time(
        self, hasher: PasswordHasher
    ) -> None:
        assert await hasher.hash(PASSWORD) != await hasher.hash(PASSWORD)

    async def test_the_owasp_profile_uses_argon2id_with_19_mib_2_passes_1_lane(
        self, owasp_hasher: PasswordHasher
    ) -> None:
        encoded = await owasp_hasher.hash(PASSWORD)

        assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    async def test_a_long_password_is_used_whole(self, hasher: PasswordHasher) -> None:
        long_password = "ü" * MAX_PASSWORD_LENGTH
        encoded = await hasher.hash(long_password)

        assert (await hasher.verify(long_password, encoded)).ok
        assert not (await hasher.verify(long_password[:-1] + "u", encoded)).ok


class TestUnknownUser:
    async def test_an_unknown_user_never_verifies(self, hasher: PasswordHasher) -> None:
        result = await hasher.verify(PASSWORD, None)

        assert result == VerifyResult(ok=False, needs_rehash=False)

    async def test_an_unknown_user_costs_a_real_argon2id_verify(
        self, hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        checked: list[str] = []
        real_verify = argon2.PasswordHasher.verify

        def spy(self: argon2.PasswordHasher, encoded: str, password: str) -> bool:
            checked.append(encoded)
            return real_verify(self, encoded, password)

        monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)

        await hasher.verify(PASSWORD, None)

        assert len(checked) == 1
        assert checked[0].startswith("$argon2id$")
        assert checked[0].startswith("$argon2id$v=19$m=8,t=1,p=1$")


class TestLegacyAndOutdatedHashes:
    @pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
    async def test_a_bcrypt_hash_verifies_and_asks_for_a_rehash(
        self, hasher: PasswordHasher, prefix: str
    ) -> None:
        encoded = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        encoded = prefix + encoded[4:]

        assert await hasher.verify(PASSWORD, encoded) == VerifyResult(ok=True, needs_rehash=True)

    async def test_a_wrong_password_against_a_bcrypt_hash_fails(
        self, hasher: PasswordHasher
    ) -> None:
        encoded = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

        result = await hasher.verify("not the password", encoded)

        assert result == VerifyResult(ok=False, needs_rehash=False)

    async def test_a_bcrypt_hash_of_a_long_password_made_by_truncation_verifies(
        self, hasher: PasswordHasher
    ) -> None:
        long_password = "a" * 100
        encoded = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()

        assert (await hasher.verify(long_password, encoded)).ok

    @pytest.mark.parametrize(
        "outdated",
        [
            argon2.PasswordHasher(time_cost=1, memory_cost=16, parallelism=1),
            argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I),
        ],
        ids=["weaker-parameters", "argon2i"],
    )
    async def test_an_argon2_hash_with_outdated_parameters_asks_for_a_rehash(
        self, hasher: PasswordHasher, outdated: argon2.PasswordHasher
    ) -> None:
        encoded = outdated.hash(PASSWORD)

        assert await hasher.verify(PASSWORD, encoded) == VerifyResult(ok=True, needs_rehash=True)

    @pytest.mark.parametrize(
        "garbage",
        [
            "",
            "not-a-hash",
            "$argon2id$",
            "$argon2id$v=19$m=8,t=1,p=1$bm90LWJhc2U2NA$bm9wZQ",
            "$argon2id$v=19$m=abc,t=1,p=1$$",
            "$2b$",
            "$2b$04$tooshort",
            "$2y$99$" + "a" * 53,
            "\x00\xff binary",
        ],
    )
    async def test_a_garbage_hash_never_verifies(
        self, hasher: PasswordHasher, garbage: str
    ) -> None:
        assert await hasher.verify(PASSWORD, garbage) == VerifyResult(ok=False, needs_rehash=False)


class TestCapacity:
    async def test_a_full_pool_answers_server_busy(self, owasp_hasher: PasswordHasher) -> None:
        results = await asyncio.gather(
            owasp_hasher.hash(PASSWORD), owasp_hasher.hash(PASSWORD), return_exceptions=True
        )

        assert isinstance(results[0], str)
        assert isinstance(results[1], ServerBusy)

    async def test_capacity_returns_when_a_job_ends(self, owasp_hasher: PasswordHasher) -> None:
        await asyncio.gather(
            owasp_hasher.hash(PASSWORD), owasp_hasher.hash(PASSWORD), return_exceptions=True
        )

        assert isinstance(await owasp_hasher.hash(PASSWORD), str)


class TestPasswordPolicy:
    def test_accepts_a_strong_password(self) -> None:
        check_password_policy("tangerine-Orbit-42", username="alice", email="alice@example.com")

    def test_refuses_a_password_shorter_than_8_characters(self) -> None:
        with pytest.raises(WeakPassword, match="at least 8 characters"):
            check_password_policy("x7#Kq2!", username="alice", email="alice@example.com")

    def test_accepts_128_characters(self) -> None:
        check_password_policy("k9$" * 42 + "zz", username="alice", email="alice@example.com")

    def test_refuses_129_characters(self) -> None:
        with pytest.raises(WeakPassword, match="at most 128 characters"):
            check_password_policy("k9$" * 43, username="alice", email="alice@example.com")

    def test_counts_unicode_characters_not_bytes(self) -> None:
        eight_characters = "ñú€漢字🙂éx"
        assert len(eight_characters.encode()) > 16

        check_password_policy(eight_characters, username="alice", email="alice@example.com")
        many = "".join(chr(0x6F22 + n) for n in range(129))
        check_password_policy(many[:128], username="alice", email="alice@example.com")
        with pytest.raises(WeakPassword):
            check_password_policy(many, username="alice", email="alice@example.com")

    @pytest.mark.parametrize("common", ["password1", "PASSWORD1", "qwertyuiop", "iloveyou"])
    def test_refuses_a_common_password(self, common: str) -> None:
        with pytest.raises(WeakPassword, match="too common"):
            check_password_policy(common, username="alice", email="alice@example.com")

    def test_refuses_a_password_containing_the_username(self) -> None:
        with pytest.raises(WeakPassword, match="username"):
            check_password_policy("my-Trader42-pass", username="trader42", email="t@example.com")

    def test_refuses_the_local_part_of_the_email(self) -> None:
        with pytest.raises(WeakPassword, match="email"):
            check_password_policy("Jane.Doe.1987", username="jd", email="jane.doe.1987@example.com")

    @pytest.mark.parametrize(
        ("password", "username"),
        [
            ("password123", "bob"),
            ("Password123!", "bob"),
            ("!!PASSWORD!!", "bob"),
            ("2024Monkey", "bob"),
            # Full-width letters and digits: NFKC makes them password12.
            ("".join(chr(ord(c) + 0xFEE0) for c in "PASSWORD12"), "bob"),
            ("Iloveyou1234", "bob"),
        ],
    )
    def test_refuses_a_common_password_with_digits_and_symbols_around_it(
        self, password: str, username: str
    ) -> None:
        with pytest.raises(WeakPassword, match="too common"):
            check_password_policy(password, username=username, email="b@example.com")

    def test_refuses_a_password_repeating_the_username(self) -> None:
        with pytest.raises(WeakPassword, match="username"):
            check_password_policy("alice1alice1", username="alice", email="a@example.com")
        with pytest.raises(WeakPassword, match="username"):
            check_password_policy("ALICEALICE", username="alice", email="a@example.com")

    @pytest.mark.parametrize("password", ["alice1alice1", "abcabcabc", "zzzzzzzzz", "q7!q7!q7!q7!"])
    def test_refuses_a_short_piece_repeated_whoever_the_user_is(self, password: str) -> None:
        with pytest.raises(WeakPassword, match="repeated"):
            check_password_policy(password, username="bob", email="b@example.com")

    def test_refuses_a_common_password_repeated(self) -> None:
        with pytest.raises(WeakPassword, match="repeated"):
            check_password_policy("sunshine1sunshine1", username="bob", email="b@example.com")

    @pytest.mark.parametrize(
        "password",
        [
            "correct horse battery staple",
            "tangerine-Orbit-42",
            "Kx8#vQ2m",  # nothing to strip that matters, not in the list
            "gold fish and 2 cats",  # common words inside a longer phrase are fine
            "tr0ub4dor-Zx9q-tr0ub4dor-Zx9q",  # a long, uncommon piece repeated
        ],
    )
    def test_accepts_uncommon_passwords(self, password: str) -> None:
        check_password_policy(password, username="bob", email="b@example.com")

    def test_the_list_names_its_source_and_licence(self) -> None:
        text = (
            resources.files("orderproc.common.security")
            .joinpath("common_passwords.txt")
            .read_text(encoding="utf-8")
        )
        header = [line for line in text.splitlines() if line.startswith("#")]
        entries = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert any("danielmiessler/SecLists" in line for line in header)
        assert any("MIT License" in line for line in header)
        assert len(entries) == 10_000
        assert "password" in entries
