"""Hostile specs end: a macro that expands itself, doubling chains, backtracking regexes in
``%(...)`` snippets are reported at their file:line, and a real export finishes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackmeta.manifest import spec
from stackmeta.manifest.shell import Context, Unevaluated, repeats_a_repetition, run_shell

ROOT = Path(__file__).parents[2]
EXCERPT = ROOT.parent / "shared" / "cmsdist-excerpts" / "CMSSW_14_0_0__el9_amd64_gcc12"

BOMBS = {
    "self": "%define a %{a}%{a}\nRequires: %{a}\n",
    "chain": "%define a0 x\n" + "".join(f"%define a{i} %{{a{i - 1}}}%{{a{i - 1}}}\n" for i in range(1, 60))
             + "Requires: %{a59}\n",
    "global": "%global g x\n" + "%global g %{g}%{g}\n" * 40 + "Requires: %{g}\n",
    "wide": "%define b " + "x" * 1000 + "\n%define w " + "%{b}" * 2000 + "\nRequires: %{w}\n",
    "sed-nested": "%define v %(echo " + "a" * 40 + "b | sed -E 's/(a+)+$/x/')\nRequires: %{v}\n",
    "sed-slow": "%define v %(echo " + "a" * 5000 + " | sed -E 's/a*a*a*a*b/x/')\nRequires: %{v}\n",
    "grep-big": "%define v %(echo " + "a" * 70000 + " | grep b)\nRequires: %{v}\n",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_hostile_preamble_is_reported_not_run(name: str) -> None:
    started = time.monotonic()
    text = BOMBS[name]
    evaluated = spec.evaluate(spec.split_lines(text, "x.spec"), {}, Context(machine="x86_64"))
    assert time.monotonic() - started < 10
    last = f"x.spec:{len(text.splitlines())}"
    assert evaluated.tags == ()  # the Requires line is reported, not used
    assert [i.where for i in evaluated.issues if i.kind == "unevaluated"][-1] in (last, f"x.spec:{2}")
    assert all(len(i.message) < 400 for i in evaluated.issues)


def test_the_bounds_are_far_above_real_specs() -> None:
    # nine doublings (512 copies) expand in full; the bounds are for runaway ones
    text = "%define a0 xy\n" + "".join(f"%define a{i} %{{a{i - 1}}}%{{a{i - 1}}}\n" for i in range(1, 10)) \
        + "Requires: %{a9}\n"
    evaluated = spec.evaluate(spec.split_lines(text, "x.spec"), {}, Context(machine="x86_64"))
    assert evaluated.issues == () and evaluated.tags[0].value == "xy" * 512


def test_regex_shapes() -> None:
    for risky in ("(a+)+$", "(a|aa)*", "((a)+)*", "(a*b?)*", "(a+){3}", "(?:a+)+"):
        assert repeats_a_repetition(risky), risky
    for real in ("^(V[0-9][0-9]*_[0-9][0-9]*)_.*", "4[.][5-9].*", "(a)+", "[(+]+", "-.+$", "^[^-]*-",
                 "([0-9]*)\\..*", "a{2}", "(ab)?", "x{", "(a+)?", "(ab){2,}"):
        assert not repeats_a_repetition(real), real
    real = "echo V1_2_3 | sed 's|^\\(V[0-9][0-9]*_[0-9][0-9]*\\)_.*|\\1|'"
    assert run_shell(real, Context(machine="x")) == "V1_2\n"
    with pytest.raises(Unevaluated, match=r"sed pattern '\(a\+\)\+\$' repeats a repetition"):
        run_shell("echo aaab | sed -E 's/(a+)+$/x/'", Context(machine="x"))


@pytest.mark.skipif(not EXCERPT.is_dir(), reason=f"the shared cmsdist excerpts are not at {EXCERPT}")
def test_export_of_a_hostile_tree_ends(tmp_path: Path) -> None:
    tree = tmp_path / "CMSSW_14_0_0__el9_amd64_gcc12"
    shutil.copytree(EXCERPT, tree)
    spec_file = tree / "py3-dxr.spec"
    lines = spec_file.read_text().splitlines(keepends=True)
    bombs = [BOMBS["self"], BOMBS["chain"], BOMBS["sed-nested"], BOMBS["sed-slow"]]
    lines[1:1] = [line.replace("Requires:", "Source9:") + "\n" for b in bombs for line in b.splitlines()]
    spec_file.write_text("".join(lines))
    done = subprocess.run([sys.executable, "-m", "stackmeta", "export", "CMSSW_14_0_0", "--cmsdist",
                           str(tree), "--locks-dir", str(tmp_path / "locks"), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "locks" / "CMSSW_14_0_0.json").read_text())
    problems = [(p["where"], p["message"]) for p in doc["release"]["problems"]
                if p["where"].startswith("py3-dxr")]
    wheres = {w for w, _ in problems}
    # the lines that use the runaway macros and the regexes: each reported at its line
    assert {"py3-dxr.spec:3", "py3-dxr.spec:64", "py3-dxr.spec:66", "py3-dxr.spec:68"} <= wheres, problems
    assert "dxr" in {p["name"] for p in doc["release"]["packages"]}
