"""The laptop report as one self-contained HTML page: inline CSS, no script, no external asset.

:func:`render` is pure: the check's verdict, the per-platform summary (share installable from
wheels, the pins that block it, and with ``--python`` the moved set), then the matrix, one row
a pin, one column a platform.
"""

from __future__ import annotations

from html import escape

from stackmeta import __version__
from stackmeta.check.platforms import Cell, MovedSet, PlatformMatrix
from stackmeta.check.report import CheckReport

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #1a1a1a; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #c8c8c8; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eef0f3; position: sticky; top: 0; }
td.c { text-align: center; white-space: nowrap; }
td.share { font-weight: bold; white-space: nowrap; }
.wheel { background: #d4f4dd; } .sdist { background: #fff1c2; } .none { background: #f9d0d0; }
.verdict { font-weight: bold; padding: 0.5em; border-radius: 4px; }
.ok { background: #d4f4dd; } .bad { background: #f9d0d0; } .meh { background: #fff1c2; }
.small { color: #555; font-size: 0.85em; }
"""


def _class(c: Cell) -> str:
    return {"wheel": "wheel", "sdist": "sdist"}.get(c.label, "none")


def _cell(c: Cell) -> str:
    text = escape(c.label)
    if c.nearest is not None:
        text += f" &rarr; {escape(str(c.nearest))}"
    title = escape(c.wheel or c.nearest_wheel or "", quote=True)
    return f'<td class="c {_class(c)}" title="{title}">{text}</td>'


def _list(items: tuple[str, ...]) -> str:
    return escape(", ".join(items)) if items else "&ndash;"


def _holds(mv: MovedSet | None) -> str:
    if mv is None or mv.stays is None:
        return "results missing"
    head = (("yes" if mv.consistent else "no new problem")
            if mv.stays else f"NO: {len(mv.problems)} new problem{'s' * (len(mv.problems) != 1)}")
    lines = [f"<b>{head}</b>"]
    lines += [f'<span class="small">{escape(p)}</span>' for p in mv.problems]
    if mv.release_problems:
        lines.append(f'<span class="small">and {len(mv.release_problems)} the release has as pinned</span>')
    return "<br>".join(lines)


def render(report: CheckReport, m: PlatformMatrix, headline: str) -> str:
    """The page (a str of HTML5); *headline* is the check's verdict, as on the terminal."""
    cls = "bad" if report.blocking else "meh" if report.incomplete else "ok"
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(m.lock_name)}: wheels for Python {escape(m.python)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(m.lock_name)}: wheels for Python {escape(m.python)} "
        f"on {len(m.platforms)} platforms</h1>",
        f'<p class="verdict {cls}">{escape(headline)}</p>',
        "<h2>Per platform</h2>",
        '<table id="summary"><thead><tr><th>platform</th><th>from wheels</th>'
        "<th>sdist only (pip builds them)</th><th>nothing installable</th>"
        + ("<th>moved to the nearest version with a wheel</th><th>does the moved set hold?</th>"
           if m.nearest else "")
        + "</tr></thead><tbody>",
    ]
    for s in m.summaries:
        row = (f'<tr data-platform="{escape(s.platform)}"><td>{escape(s.platform)}</td>'
               f'<td class="share">{s.wheels}/{s.total} ({s.percent})</td>'
               f"<td>{_list(s.sdist_only)}</td><td>{_list(s.nothing)}</td>")
        if m.nearest:
            mv = s.moved
            moves = [f"{n} {a} \u2192 {b}" for n, a, b in (mv.moves if mv else ())]
            if s.no_wheel_anywhere:
                moves.append("no version with a wheel: " + ", ".join(s.no_wheel_anywhere))
            row += f"<td>{_list(tuple(moves))}</td><td>{_holds(mv)}</td>"
        out.append(row + "</tr>")
    out += [
        "</tbody></table>",
        f"<h2>Pins ({len(m.rows)})</h2>",
        '<p class="small"><span class="wheel">&nbsp;wheel&nbsp;</span> a wheel pip installs; '
        '<span class="sdist">&nbsp;sdist&nbsp;</span> only an sdist, pip builds it; '
        '<span class="none">&nbsp;none&nbsp;</span> nothing pip could install'
        + ("; &rarr; the nearest version with a wheel" if m.nearest else "") + ".</p>",
        '<table id="matrix"><thead><tr><th>package</th><th>version</th>'
        + "".join(f"<th>{escape(p)}</th>" for p in m.platforms) + "</tr></thead><tbody>",
    ]
    for r in m.rows:
        out.append(f'<tr data-name="{escape(r.name)}"><td>{escape(r.name)}</td><td>{escape(r.version)}</td>'
                   + "".join(_cell(r.cells[p]) for p in m.platforms) + "</tr>")
    out += [
        "</tbody></table>",
        f'<p class="small">{escape(report.index_url)} &middot; stackmeta {escape(__version__)}</p>',
        "</body></html>", "",
    ]
    return "\n".join(out)
