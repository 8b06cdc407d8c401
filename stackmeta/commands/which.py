"""stackmeta which REQUIREMENT: the releases that ship a version of a package the requirement admits."""

from __future__ import annotations

import argparse

from stackmeta.commands.history import add_selection, selected
from stackmeta.console import Output
from stackmeta.locks import history


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "which", parents=[common], help="the releases that ship a match of a requirement, e.g. 'awkward>=2'",
        description="Read the committed constraints locks (locks/all/, every release of the cmsdist history) "
                    "and list, in release order, the releases that ship a version REQUIREMENT admits.",
    )
    add_selection(p)
    p.add_argument("requirement", help="a name and a version specifier, e.g. 'awkward>=2'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, output: Output) -> int:
    requirement = history.parse_requirement(args.requirement)
    locks = selected(args)
    found = history.which(locks, requirement)
    if output.json_mode:
        output.json({
            "requirement": str(requirement), "releases_read": len(locks),
            "matches": [{"release": m.release, "lock": m.lock, "version": str(m.version),
                         "python": str(m.python)} for m in found],
        })
        return 0
    for m in found:
        output.result(f"{m.release:<32} {requirement.name} {m.version}  (Python {m.python})")
    output.info(f"{len(found)} of {len(locks)} releases ship {requirement}")
    return 0 if found else 1
