"""The spec preamble language: expansion, the shell subset, conditionals, assembly."""

from __future__ import annotations

import pytest

from stackmeta.manifest import expressions, shell, spec

AMD64 = shell.Context(machine="x86_64")
ARM = shell.Context(machine="aarch64")


def evaluate(text: str, context: shell.Context = AMD64, **given: str) -> spec.Evaluated:
    macros = {name: spec.Macro(value) for name, value in given.items()}
    return spec.evaluate(spec.preamble(spec.split_lines(text, "x.spec")), macros, context)


def expand(text: str, context: shell.Context = AMD64, **given: str) -> str:
    exp = spec.Expander(macros={k: spec.Macro(v) for k, v in given.items()}, context=context)
    return exp.expand(text)


# -- expansion ----------------------------------------------------------------------------


def test_conditional_forms() -> None:
    assert expand("%{?x:yes}|%{!?x:no}|%{?x}|%{?y}", x="1") == "yes||1|"
    assert expand("%{?x:yes}|%{!?x:no}|%{?x}") == "|no|"
    assert expand("%%define and %%{x}") == "%define and %{x}"
    assert expand("%undefined_macro stays %{also_undefined}") == "%undefined_macro stays %{also_undefined}"


def test_define_expands_when_used_global_at_once() -> None:
    ev = evaluate("%define a %{b}\n%global g %{b}\n%define b late\nRequires: %a %g\n", b="early")
    assert [t.value for t in ev.tags] == ["late early"]


def test_commented_define_still_defines() -> None:
    ev = evaluate("# %define skip yes\nRequires: %{?skip:py3-skip}\n")
    assert ev.requires() == [("py3-skip", "x.spec:2")]


def test_parametric_macro() -> None:
    text = (
        "%define is_cmsos() %(case %{cmsos} in (%{1}_*) echo 1 ;; (*) echo 0 ;; esac)\n"
        "%if %{is_cmsos el9}\nRequires: on-el9\n%else\nRequires: elsewhere\n%endif\n"
    )
    assert evaluate(text, cmsos="el9_amd64").requires() == [("on-el9", "x.spec:3")]
    assert evaluate(text, cmsos="el8_amd64").requires() == [("elsewhere", "x.spec:5")]


def test_macro_forms_in_requires() -> None:
    text = "%{!?without_tensorflow:Requires: py3-tensorflow}\n%{?without_x:Requires: py3-x}\n"
    assert [n for n, _ in evaluate(text).requires()] == ["py3-tensorflow"]
    assert evaluate(text, without_tensorflow="1").requires() == []


def test_expand_with_define_inside() -> None:
    ev = evaluate("%{expand:%%define v %(echo 1.2.3 | cut -d. -f1,2 | tr -d .)}\nRequires: x%{v}\n")
    assert ev.requires() == [("x12", "x.spec:2")]


def test_requires_tokens_skip_versions_and_macros() -> None:
    ev = evaluate("Requires: a >= 1.0 b %{undefined} c 2\nBuildRequires: d\n")
    assert [n for n, _ in ev.requires()] == ["a", "b", "c"]
    assert [n for n, _ in ev.requires("BuildRequires")] == ["d"]


# -- the shell subset ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "result"),
    [
        ("echo py2-PyYAML | cut -f2 -d-", "PyYAML"),
        ("echo py3-backports-lzma | cut -f2-10 -d-", "backports-lzma"),
        ("echo 3.9.14 | cut -d. -f 1,2", "3.9"),
        ("echo 'git+https://a/b/source.tar.gz' | sed 's|.*/||'", "source.tar.gz"),
        ("echo 6.1.0 | sed -e's/\\.0$//'", "6.1"),
        ("echo py3-some-tool | tr '[a-z-]' '[A-Z_]'", "PY3_SOME_TOOL"),
        ("echo py2-a-b | cut -d- -f2,3 | tr '-' '/'", "a/b"),
        ("case slc7_amd64_gcc700 in (*amd64*) echo 1 ;; (*) echo 0 ;; esac", "1"),
        ("case slc7_aarch64_gcc700 in (*amd64*) echo 1 ;; (*) echo 0 ;; esac", "0"),
        ("case $(uname -s) in (Linux) echo 1 ;; (*) echo 0 ;; esac", "1"),
        ("echo osx108 | grep osx >/dev/null && echo true", "true"),
        ("echo el9 | grep osx >/dev/null && echo true", ""),
    ],
)
def test_shell_subset(command: str, result: str) -> None:
    assert shell.run_shell(command, AMD64).rstrip("\n") == result


def test_shell_outside_subset_is_reported_not_guessed() -> None:
    text = "%define v %(while true; do echo Requires: a; done)\nRequires: %v\nRequires: kept\n"
    ev = evaluate(text)
    assert ev.requires() == [("kept", "x.spec:3")]
    assert ev.issues == (
        spec.Issue(
            kind="unevaluated",
            message="the shell command '%(while true; do echo Requires: a; done)' is not evaluated "
            "('while' is outside the supported shell subset)",
            where="x.spec:2",
        ),
    )


def test_for_loops_of_cmsdist_are_evaluated() -> None:
    """The three loops of CMSSW_14_0_0's vectorization files, as the spec has them."""
    given = {"package_vectorization": "x86-64-v3 x86-64-v4", "vectorized_packages": "zlib fastjet",
             "base_package": "fastjet"}
    text = (
        "%{expand:%(i=90; for v in %{package_vectorization}; do let i=$i+1 ; "
        "echo Source${i}: vectorization/$v; done)}\n"
        "%{expand:%(for t in %{vectorized_packages} ; do echo Requires: $t; for v in "
        "%{package_vectorization}; do echo Requires: ${t}_${v}; done; done)}\n"
        "%{expand:%(for v in %{package_vectorization}; do echo Requires: %{base_package}_$v; done)}\n"
    )
    ev = evaluate(text, **given)
    assert ev.issues == ()
    assert [(t.name, t.value) for t in ev.tags if t.name.startswith("Source")] == [
        ("Source91", "vectorization/x86-64-v3"), ("Source92", "vectorization/x86-64-v4")]
    assert [name for name, _ in ev.requires()] == [
        "zlib", "zlib_x86-64-v3", "zlib_x86-64-v4", "fastjet", "fastjet_x86-64-v3", "fastjet_x86-64-v4",
        "fastjet_x86-64-v3", "fastjet_x86-64-v4"]


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("echo $LD_LIBRARY_PATH | tr : x", "the shell variable $LD_LIBRARY_PATH in 'echo $LD_LIBRARY_PATH'"),
        ("for v in a; do echo $v; done | sort", "'done | sort' after a loop"),
        ("for v in a; echo x; done", "for without do in 'for v in a'"),
        ("for v in a; do echo x", "for without done"),
        ("let i=i**9", "the arithmetic 'i**9'"),
    ],
)
def test_shell_loops_outside_the_subset_say_why(command: str, why: str) -> None:
    with pytest.raises(shell.Unevaluated) as info:
        shell.run_shell(command, AMD64)
    assert str(info.value) == why


def test_unused_define_is_not_evaluated() -> None:
    assert evaluate("%define never %(perl -e 'print 1')\nRequires: a\n").issues == ()


# -- conditionals -------------------------------------------------------------------------


def test_if_expressions() -> None:
    text = (
        '%if "%{?pip_name:set}" != "set"\n%define pip_name %(echo %n | cut -f2-10 -d-)\n%endif\n'
        "Requires: %{pip_name}\n"
        '%if "%{cmsos}" != "slc7_aarch64" && 1\nRequires: cudnn\n%endif\n'
        "%if (2 + 3) * 2 == 10 || 0\nRequires: arith\n%endif\n"
        "%if !%{?undefined_flag:1}%{!?undefined_flag:0}\nRequires: negated\n%endif\n"
    )
    ev = evaluate(text, n="py3-numpy", cmsos="el9_amd64")
    assert [n for n, _ in ev.requires()] == ["numpy", "cudnn", "arith", "negated"]
    ev = evaluate(text, n="py3-numpy", cmsos="slc7_aarch64", pip_name="NumPy")
    assert [n for n, _ in ev.requires()] == ["NumPy", "arith", "negated"]


def test_ifarch_ifos_elif_nesting() -> None:
    text = (
        "%ifarch x86_64\nRequires: amd\n%else\nRequires: other\n%endif\n"
        "%ifnarch ppc64le\nRequires: not-ppc\n%endif\n"
        "%ifos linux\n%if 0\nRequires: never\n%elif 1\nRequires: elif\n"
        "%else\nRequires: never2\n%endif\n%endif\n"
        "%ifos darwin\nRequires: mac\n%endif\n"
    )
    assert [n for n, _ in evaluate(text, AMD64).requires()] == ["amd", "not-ppc", "elif"]
    assert [n for n, _ in evaluate(text, ARM).requires()] == ["other", "not-ppc", "elif"]


def test_unreadable_condition_is_an_issue() -> None:
    ev = evaluate("%if %isnotonline\nRequires: x\n%endif\nRequires: y\n")
    assert [n for n, _ in ev.requires()] == ["y"]
    assert ev.issues[0].where == "x.spec:1"
    assert ev.issues[0].message == "cannot evaluate the condition %if %isnotonline"


def test_unbalanced_endif_is_reported() -> None:
    ev = evaluate("%if 1\nRequires: x\n")
    assert ev.issues == (spec.Issue(kind="syntax", message="1 %if without %endif", where="x.spec:2"),)


# -- lines, preamble, assembly ------------------------------------------------------------


def test_preamble_stops_at_first_section_and_skips_multiline_defines() -> None:
    text = (
        "### RPM external py3-x 1.0\n"
        "%define build_steps \\\n"
        "  make \\\n"
        "Requires: py3-evil \\\n"
        "  done\n"
        "Requires: py3-good\n"
        "%prep\n"
        "Requires: py3-evil2\n"
    )
    lines = spec.preamble(spec.split_lines(text, "x.spec"))
    assert [line.lineno for line in lines] == [1, 2, 6]
    ev = spec.evaluate(lines, {}, AMD64)
    assert ev.requires() == [("py3-good", "x.spec:6")]
    assert ev.macros["build_steps"].body == "<multi-line value>"


def test_heredoc_in_preamble_is_skipped() -> None:
    text = "Requires: a\n%define x %(cat <<EOF\nRequires: evil\nEOF\n)\nRequires: b\n"
    lines = spec.preamble(spec.split_lines(text, "x.spec"))
    assert [line.text for line in lines if "Requires" in line.text] == ["Requires: a", "Requires: b"]


def test_section_names() -> None:
    for section in ("%prep", "%build", "%install", "%files", "%post", "%description", "%package devel"):
        assert spec.is_section(section)
    assert not spec.is_section("%define prepare 1")
    assert not spec.is_section("%{prep}")


def test_assemble_include_in_place_import_at_end_once() -> None:
    files = {
        "a.file": "A1\n## INCLUDE b\nA2\n",
        "b.file": "B1\n## INCLUDE a\n",
        "imp.file": "I1\n## INCLUDE b\n",
        "pkg/local.file": "L1\n",
        "local.file": "top-level\n",
    }
    text = "S1\n## IMPORT imp\n## INCLUDE a\n## INCLUDE local\n## INCLUDE missing\nS2\n"
    assembled = spec.assemble("pkg.spec", text, files.get, package="pkg")
    assert [line.text for line in assembled.lines] == [
        "S1",
        "A1",
        "B1",
        "A2",
        "L1",
        "S2",
        "I1",
        "## INCLUDE b",
    ]
    assert assembled.imports == ("imp",)
    assert assembled.issues == (
        spec.Issue(
            kind="missing-include", message="INCLUDE missing: no missing.file in the tree", where="pkg.spec:5"
        ),
    )
    assert assembled.lines[2].where == "b.file:1"


def test_body_facts_from_line_or_from_full_body() -> None:
    reduced = "### RPM x 1\n%prep\n## BODY-FACTS copies=yes site-packages=2,3 uses=3\n"
    facts = spec.body_facts(reduced, [])
    assert facts == spec.BodyFacts(copies=True, site_packages=frozenset({2, 3}), uses=frozenset({3}))
    full = (
        "%install\n## INITENV +PATH PYTHON3PATH %{i}/${PYTHON3_LIB_SITE_PACKAGES}\n"
        "for pkg in %{builddirectpkgreqs}; do cp -r $pkg/${PYTHON_LIB_SITE_PACKAGES} %i; done\n"
        "pip3 install --no-deps x\n"
    )
    facts = spec.body_facts(full, spec.split_lines(full, "x.spec"))
    assert facts == spec.BodyFacts(copies=True, site_packages=frozenset({2}), uses=frozenset({3}))


def test_header() -> None:
    lines = spec.split_lines("%define v 1\n### RPM external py3-x %{v}-CMS1\n", "x.spec")
    head = spec.header(lines)
    assert head is not None
    assert head[:3] == ("external", "py3-x", "%{v}-CMS1")
    assert head[3].where == "x.spec:2"


def test_expression_values() -> None:
    assert expressions.evaluate_expression('"a" == "a"') == 1
    assert expressions.evaluate_expression("1 && 0 || 3") == 3
    assert expressions.evaluate_expression("%isamd64") is None
    assert expressions.evaluate_expression("bareword") is None


def test_evaluate_notes_the_macros_it_looked_up() -> None:
    seen: set[str] = set()
    macros = {"used": spec.Macro("%{inner}"), "inner": spec.Macro("1"), "unused": spec.Macro("2")}
    ev = spec.evaluate(spec.split_lines("Requires: a%{used} %{?absent:b}\n", "x.spec"), macros, AMD64, seen)
    assert ev.requires() == [("a1", "x.spec:1")]
    assert {"used", "inner", "absent"} <= seen
    assert "unused" not in seen
