"""The one line kept as the reason a build failed (:func:`stackmeta.index.pep517._last_line`),
on the shapes of output real backends and installers print."""

from __future__ import annotations

from stackmeta.index.pep517 import _last_line


def test_uv_error_and_its_cause_are_one_line() -> None:
    out = (b"Using Python 3.11.7 environment at: /tmp/build-env-4fmkzqqd\n"
           b"error: No solution found when resolving dependencies\n"
           b"  cause: Because flit-core was not found in the package registry and you require "
           b"flit-core>=3.2, we can conclude that your requirements are unsatisfiable.\n"
           b"CalledProcessError: Command '['uv', 'pip', 'install', 'flit_core>=3.2']' returned non-zero "
           b"exit status 1.\n")
    assert _last_line(out) == (
        "error: No solution found when resolving dependencies: Because flit-core was not found in the "
        "package registry and you require flit-core>=3.2, we can conclude that your requirements are "
        "unsatisfiable.")


def test_a_banner_is_not_the_reason() -> None:
    out = (b"*** scikit-build-core 0.8.2 using CMake 3.25.1 (wheel)\n"
           b"CMake Error at CMakeLists.txt:3 (project):\n"
           b"  No CMAKE_CXX_COMPILER could be found.\n"
           b"*****************************************************************************\n"
           b"\n")
    assert _last_line(out) == "No CMAKE_CXX_COMPILER could be found."


def test_the_backends_own_error_wins_over_the_wrappers() -> None:
    out = (b"Traceback (most recent call last):\n"
           b'  File "setup.py", line 3, in <module>\n'
           b"ModuleNotFoundError: No module named 'pkg_resources'\n"
           b"BuildBackendException: Backend subprocess exited when trying to invoke build_wheel\n")
    assert _last_line(out) == "ModuleNotFoundError: No module named 'pkg_resources'"


def test_pips_frame_around_a_backends_output_is_not_the_reason() -> None:
    out = (b"  CMake Error at CMakeLists.txt:1 (project):\n"
           b"    No CMAKE_CXX_COMPILER could be found.\n"
           b"  [end of output]\n"
           b"note: This error originates from a subprocess, and is likely not a problem with pip.\n"
           b"ERROR: Failed building wheel for correctionlib\n"
           b"Failed to build correctionlib\n")
    assert _last_line(out) == "No CMAKE_CXX_COMPILER could be found."


def test_uv_builds_summary_is_not_the_reason() -> None:
    # uv build (another Python of the machine builds through it): its own summary and causes
    # follow the backend's output
    out = (b"  File \"/tmp/src/Theano-1.0.5/versioneer.py\", line 342, in get_config_from_root\n"
           b"    parser = configparser.SafeConfigParser()\n"
           b"             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
           b"AttributeError: module 'configparser' has no attribute 'SafeConfigParser'. Did you mean: "
           b"'RawConfigParser'?\n"
           b"error: Failed to build `/tmp/src/Theano-1.0.5`\n"
           b"  cause: The build backend returned an error\n"
           b"  cause: Call to `setuptools.build_meta:__legacy__.get_requires_for_build_wheel` failed "
           b"(exit status: 1)\n"
           b"\n"
           b"hint: Build failures usually indicate a problem with the package or the build environment\n")
    assert _last_line(out) == ("AttributeError: module 'configparser' has no attribute 'SafeConfigParser'. "
                               "Did you mean: 'RawConfigParser'?")


def test_uv_builds_unmet_build_requirement_is_its_cause() -> None:
    out = (b"error: Failed to build `/tmp/src/pkg-1.0`\n"
           b"  cause: Failed to resolve requirements from `build-system.requires`\n"
           b"  cause: No solution found when resolving: `flit-core>=3.2`\n"
           b"  cause: Because flit-core was not found in the package registry and you require "
           b"flit-core>=3.2, we can conclude that your requirements are unsatisfiable.\n")
    assert _last_line(out).endswith("Because flit-core was not found in the package registry and you "
                                    "require flit-core>=3.2, we can conclude that your requirements are "
                                    "unsatisfiable.")
