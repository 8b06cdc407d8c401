"""Run the real ``stackmeta`` command line in-process, capturing what it prints."""

from __future__ import annotations

import contextlib
import io

from stackmeta.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``stackmeta ARGV...``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def interruptible() -> None:
    """``preexec_fn`` for a child the test sends Ctrl-C (SIGINT): the default disposition, so the
    child's Python installs its KeyboardInterrupt handler even when this test run inherited
    SIGINT ignored (as a background job of a non-interactive shell does, and its children)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
