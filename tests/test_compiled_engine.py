"""The compiled engine's build and the choice between it and the sources: a stale compiled
module never shadows its edited source, and a build without a C compiler installs the
Python sources (tests/streams/test_native.py checks what the engine tests run)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.paths import REPO


def _import_from(root: Path, env: dict[str, str] | None = None) -> str:
    """What a fresh interpreter with ``root`` first on its path imports."""
    code = (
        "from arbstream import streams; "
        "import arbstream.streams.engine as e, arbstream.streams.windows as w; "
        "print(streams.IMPLEMENTATION.compiled, e.__file__.endswith('.py'), "
        "w.__file__.endswith('.py'), repr(streams.IMPLEMENTATION.reason))"
    )
    environment = {k: v for k, v in os.environ.items() if k != "ARBSTREAM_ENGINE"}
    environment |= {"PYTHONPATH": str(root), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,  # not the checkout: "-c" puts the working directory first on the path
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_stale_compiled_module_never_shadows_its_edited_source(tmp_path: Path) -> None:
    (tmp_path / "arbstream").mkdir()
    shutil.copy(REPO / "arbstream" / "__init__.py", tmp_path / "arbstream")
    copy = tmp_path / "arbstream" / "streams"
    shutil.copytree(REPO / "streams", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _import_from(tmp_path) == "True False False ''"  # the copy, as built
    assert _import_from(tmp_path, {"ARBSTREAM_ENGINE": "python"}) == (
        "False True True 'ARBSTREAM_ENGINE=python'"
    )
    with (copy / "windows.py").open("a") as f:
        f.write("# an edit after the build\n")
    stale = _import_from(tmp_path)
    # every compiled module runs from source, not only the edited one: no mixing
    assert stale.startswith("False True True"), stale
    assert "streams.windows changed since the build" in stale


@pytest.mark.slow  # a whole pip install
def test_a_build_without_a_c_compiler_installs_the_python_sources(tmp_path: Path) -> None:
    """``pip wheel .`` with a C compiler that always fails: a wheel all the same, with
    the sources, no native module, and the reason recorded for the start-up line."""
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".kafka", ".tools", ".git", "*.so", "_build.py", "__pycache__", "build",
            "*.egg-info", ".mypy_cache", ".pytest_cache", ".hypothesis", "out",
        ),
    )  # fmt: skip
    env = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    env.pop("ARBSTREAM_ENGINE", None)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("arbstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "arbstream/streams/engine.py" in names
    assert not [n for n in names if n.startswith("streams/")], names  # one namespace
    assert not [n for n in names if n.endswith(".so")], names
    record = zipfile.ZipFile(wheel).read("arbstream/streams/_build.py").decode()
    assert "SOURCES: dict[str, str] = {}" in record
    assert "compiling the engine failed" in record


def test_a_command_says_once_that_the_engine_runs_from_source(tmp_path: Path) -> None:
    scenario = REPO / "scenarios" / "dislocation-2026-01-30"
    output = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "arbstream.cli", "replay", str(scenario / "ticks.jsonl"),
            "--config", str(scenario / "config.toml"), "--output", str(output)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "ARBSTREAM_ENGINE"}
    source = subprocess.run(
        args, env=env | {"ARBSTREAM_ENGINE": "python"}, capture_output=True, text=True, check=True
    )
    said = [line for line in source.stderr.splitlines() if "Python sources" in line]
    assert said == [
        "arbstream: the engine runs from its Python sources, about half as fast as "
        "compiled (ARBSTREAM_ENGINE=python)"
    ]
    compiled = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    assert "Python sources" not in compiled.stderr  # make install compiled it
    assert output.read_bytes()  # and both replayed


def test_the_schema_check_sees_what_the_compiled_loops_give() -> None:
    """The session's check of every output against its schema (tests/conftest.py) sees
    the records a replay writes and a worker's batch encodes, made by the compiled loops
    of streams/batch.py, which never call the ``Engine.process`` the check also wraps."""
    from arbstream import streams  # noqa: PLC0415
    from arbstream.agents import partition  # noqa: PLC0415
    from arbstream.config import load_config  # noqa: PLC0415
    from arbstream.replay import replay  # noqa: PLC0415
    from arbstream.streams.engine import Engine  # noqa: PLC0415
    from helpers.schemas import CHECKED  # noqa: PLC0415

    scenario = REPO / "scenarios" / "dislocation-2026-01-30"
    config = load_config(scenario / "config.toml")
    lines = (scenario / "ticks.jsonl").read_bytes().splitlines(keepends=True)
    before = CHECKED.copy()
    out = io.BytesIO()
    replay(io.BytesIO(b"".join(lines)), Engine(config), out, None)
    written = out.getvalue().count(b"\n")
    encoded = partition.encode_values(Engine(config), lines, list(range(len(lines))))
    assert CHECKED["replay_lines"] - before["replay_lines"] == written > 1000
    assert CHECKED["encode_values"] - before["encode_values"] == len(encoded) == written
    if streams.IMPLEMENTATION.compiled:  # the blind spot the wrappers close
        assert CHECKED["process"] == before["process"]
