"""stackmeta diff on real records written through the record module, real files and a real
interpreter's environment."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.cli import main
from stackmeta.record import BuildKind, Package, Release


def _release(name: str, pins: dict[str, str], libs: tuple[str, ...] = ()) -> Release:
    return Release(
        release=name,
        metapackage_version=Version(name.removeprefix("CMSSW_").replace("_", ".")),
        arches=("el9_amd64_gcc12",),
        python=Version("3.9.14"),
        source="folder test",
        stackmeta_version="test",
        packages=tuple(
            Package(rpm=f"py3-{n}", name=canonicalize_name(n), display_name=n, version_written=v,
                    version=Version(v), build=BuildKind.PYPI, system_libs=libs if n == "numpy" else ())
            for n, v in pins.items()
        ),
    )


def _write(locks: Path, rel: Release) -> None:
    record.write_document(record.record_path(locks, rel.release), record.new_document(rel))


def test_two_releases(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_13_0_0", {"numpy": "1.22.3", "six": "1.16.0", "rootpy": "1.0"},
                              libs=("OpenBLAS",)))
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3", "six": "1.16.0", "pandas": "1.5.3",
                                               "Rootpy": "0.9"}, libs=("OpenBLAS", "hdf5")))
    code = main(["diff", "CMSSW_13_0_0", "CMSSW_14_0_0", "--locks-dir", str(tmp_path), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["added"] == [{"name": "pandas", "old": None, "new": "1.5.3"}]
    assert data["upgraded"] == [{"name": "numpy", "old": "1.22.3", "new": "1.24.3"}]
    assert data["downgraded"] == [{"name": "rootpy", "old": "1.0", "new": "0.9"}]
    assert data["removed"] == []
    assert data["unchanged"] == 1
    assert data["system_libs"] == {"added": ["hdf5"], "removed": []}


def test_markdown_for_release_notes(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_13_0_0", {"numpy": "1.22.3", "six": "1.15.0"}))
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3"}))
    assert main(["diff", "CMSSW_13_0_0", "CMSSW_14_0_0", "--locks-dir", str(tmp_path),
                 "--format", "markdown", "--exit-code"]) == 1
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out == (
        "## CMSSW_14_0_0 compared with CMSSW_13_0_0\n\n"
        "1 removed, 1 upgraded; 0 unchanged.\n\n"
        "### Removed (1)\n\n| package | version |\n| --- | --- |\n| six | 1.15.0 |\n\n"
        "### Upgraded (1)\n\n| package | version |\n| --- | --- |\n| numpy | 1.22.3 -> 1.24.3 |\n"
    )


def test_release_against_a_requirements_file(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3", "six": "1.16.0"}))
    req = tmp_path / "mine.txt"
    req.write_text("# my pins\nNumPy==1.24.3 \\\n    --hash=sha256:abc\nsix==1.17.0  # newer\n")
    assert main(["diff", "CMSSW_14_0_0", str(req), "--locks-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["upgraded"] == [{"name": "six", "old": "1.16.0", "new": "1.17.0"}]
    assert data["unchanged"] == 1


def test_not_a_pin_is_a_clear_error(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3"}))
    req = tmp_path / "loose.txt"
    req.write_text("numpy>=1.20\n")
    assert main(["diff", "CMSSW_14_0_0", str(req), "--locks-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.strip() == (
        f"error: {req}:1: 'numpy>=1.20' is not an exact pin (name==version): a diff compares exact versions"
    )


def test_unknown_side_lists_the_records(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3"}))
    assert main(["diff", "CMSSW_14_0_1", "CMSSW_14_0_0", "--locks-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "'CMSSW_14_0_1' is neither a record in" in err
    assert "records there: CMSSW_14_0_0" in err
    assert "Traceback" not in err


def test_release_against_a_real_environment(tmp_path: Path, capsys: object) -> None:
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    site = next((env / "lib").glob("python3.*/site-packages"))
    # a real installed distribution: its .dist-info, as an installer writes it
    info = site / "six-1.15.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: six\nVersion: 1.15.0\n")
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3", "six": "1.16.0"}))
    code = main(["diff", "CMSSW_14_0_0", "--env", str(env / "bin" / "python"),
                 "--locks-dir", str(tmp_path), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["removed"] == [{"name": "numpy", "old": "1.24.3", "new": None}]
    assert data["downgraded"] == [{"name": "six", "old": "1.16.0", "new": "1.15.0"}]
    version = subprocess.run([str(env / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert data["python"] == {"old": "3.9.14", "new": version}
    assert sys.executable  # the diff ran another interpreter, not this one


def test_an_environment_made_by_stackmeta_env_is_compared_with_its_nearest_set(
        tmp_path: Path, capsys: object) -> None:
    """The nearest set moved numpy; the user overrode six: the diff shows only the override."""
    rel = _release("CMSSW_14_0_0", {"numpy": "1.24.3", "six": "1.16.0"})
    doc = record.new_document(rel)
    doc["consistent"] = {"pins": {"numpy": "1.23.5", "six": "1.16.0"},
                         "deviations": [{"name": "numpy", "release_version": "1.24.3", "version": "1.23.5"}]}
    record.write_document(record.record_path(tmp_path, "CMSSW_14_0_0"), doc)
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    site = next((env / "lib").glob("python3.*/site-packages"))
    for name, version in (("numpy", "1.23.5"), ("six", "1.17.0")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (env / "stackmeta-env.json").write_text(json.dumps(
        {"release": "CMSSW_14_0_0", "requested": "six==1.17.0", "deviations": ["six 1.16.0 -> 1.17.0"]}))
    code = main(["diff", "CMSSW_14_0_0", "--env", str(env / "bin" / "python"),
                 "--locks-dir", str(tmp_path), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["old"] == "CMSSW_14_0_0 (nearest consistent set)"
    assert data["upgraded"] == [{"name": "six", "old": "1.16.0", "new": "1.17.0"}]
    assert data["downgraded"] == data["added"] == data["removed"] == []


def test_an_environment_is_compared_like_with_like(tmp_path: Path, capsys: object) -> None:
    """The release pins pip and setuptools (installed at those versions) and links numpy
    against a system library; the environment's wheel is not pinned: nothing differs."""
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    site = next((env / "lib").glob("python3.*/site-packages"))
    installed = (("numpy", "1.24.3"), ("pip", "23.1.1"), ("setuptools", "63.4.3"), ("wheel", "0.40.0"))
    for name, version in installed:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3", "pip": "23.1.1", "setuptools": "63.4.3"},
                              libs=("openblas",)))
    code = main(["diff", "CMSSW_14_0_0", "--env", str(env / "bin" / "python"),
                 "--locks-dir", str(tmp_path), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["added"] == data["removed"] == data["upgraded"] == data["downgraded"] == []
    assert data["system_libs"] == {"added": [], "removed": []}


def test_a_line_that_is_no_requirement_is_one_line(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3"}))
    req = tmp_path / "broken.txt"
    req.write_text("numpy==1.24.3\nx y z\n")
    assert main(["diff", "CMSSW_14_0_0", str(req), "--locks-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err == (f"error: {req}:2: not a requirement (Expected semicolon (after name with no version "
                   "specifier) or end): fix or remove the line\n")


def test_messages_quoting_other_tools_stay_on_one_line() -> None:
    from stackmeta.errors import StackmetaError

    message = StackmetaError("bad (Expected end\n    x y z\n      ^\n): fix it")
    assert str(message) == "bad (Expected end x y z ): fix it"


def test_a_malformed_record_or_file_is_one_line(tmp_path: Path, capsys: object) -> None:
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3"}))
    doc = json.loads(record.record_path(tmp_path, "CMSSW_14_0_0").read_text())
    del doc["release"]["packages"][0]["name"]
    record.write_document(record.record_path(tmp_path, "CMSSW_13_0_0"), doc)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"# caf\xe9\nnumpy==1.24.3\n")
    lock = tmp_path / "pylock.toml"
    lock.write_bytes(b"# caf\xe9\n")
    doc = record.new_document(_release("CMSSW_12_0_0", {"numpy": "1.24.3"}))
    doc["consistent"] = {"pins": {"numpy": "1.23.5"}, "deviations": ["numpy 1.24.3 -> 1.23.5"]}
    record.write_document(record.record_path(tmp_path, "CMSSW_12_0_0"), doc)
    for new, message in (
        ("CMSSW_13_0_0", f"{tmp_path}/CMSSW_13_0_0.json: malformed release section (KeyError('name')): "
                         "export it again"),
        ("CMSSW_12_0_0", f"{tmp_path}/CMSSW_12_0_0.json: malformed 'consistent' section "
                         "(AttributeError(\"'str' object has no attribute 'get'\")): "
                         "run 'stackmeta resolve CMSSW_12_0_0' again"),
        (str(latin1), f"{latin1}: not UTF-8 text (byte 5): give a requirements file"),
        (str(lock), f"{lock}: not UTF-8 text (byte 5): give a PEP 751 lock file"),
    ):
        assert main(["diff", "CMSSW_14_0_0", new, "--locks-dir", str(tmp_path)]) == 1
        assert capsys.readouterr().err == f"error: {message}\n"  # type: ignore[attr-defined]


def test_an_error_names_the_line_in_the_file(tmp_path: Path, capsys: object) -> None:
    # continuation lines (as in the .hashes.txt stackmeta lock writes) do not shift the line numbers
    _write(tmp_path, _release("CMSSW_14_0_0", {"numpy": "1.24.3"}))
    req = tmp_path / "hashes.txt"
    req.write_text("numpy==1.24.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
                   "six>=1 \\\n  --hash=sha256:cc\n")
    assert main(["diff", "CMSSW_14_0_0", str(req), "--locks-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err == (f"error: {req}:4: 'six>=1' is not an exact pin (name==version): a diff compares exact "
                   "versions\n")
    hashes = Path(__file__).parents[2] / "locks" / "CMSSW_14_0_0.hashes.txt"
    assert main(["diff", str(hashes), "CMSSW_14_0_0", "--locks-dir", str(hashes.parent), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    # every pin of the hashes file read (it leaves out dxr 1.0.x and shellingham 1.5.0: no file pip takes)
    assert data["unchanged"] == 319 and data["removed"] == data["upgraded"] == data["downgraded"] == []
    assert [c["name"] for c in data["added"]] == ["dxr", "shellingham"]
