"""A working group's baseline: a release's nearest consistent set plus the group's own
additions (and overrides), checked for closure by the same resolver as a release, with its
deviations recorded the same way. Pure: the plan comes from :func:`stackmeta.resolve.overlay.plan`."""

from __future__ import annotations

from dataclasses import replace

from stackmeta.resolve.nearest import Addition, Deviation, NearestSet
from stackmeta.resolve.overlay import Plan

GROUP_RULE = (
    "the release's nearest consistent set, with the group's additions and overrides fixed; a pin "
    "of the set moves only when they require it, to the nearest version that fits"
)


def group_set(nearest: NearestSet, plan: Plan) -> NearestSet:
    """The nearest set of a group built on *nearest* with what *plan* holds: the set's own
    deviations and omissions, plus one deviation per override or forced move, plus every new
    package as an addition naming what requires it."""
    release_versions = {d.name: d.release_version for d in nearest.deviations}
    pins = nearest.pin_map
    deviations = {d.name: d for d in nearest.deviations}
    for o in plan.overrides:
        deviations[o.name] = Deviation(
            name=o.name, release_version=release_versions.get(o.name, str(pins[o.name])),
            version=o.version, reason=f"the group overrides it: {o.text}")
    for m in plan.moves:
        deviations[m.name] = Deviation(
            name=m.name, release_version=release_versions.get(m.name, str(m.old)), version=m.new,
            reason=f"moved for the group's {plan.requested}: {m.reason}")
    additions = {a.name: a for a in nearest.additions}
    for n in plan.new:
        additions[n.name] = Addition(name=n.name, version=n.version, required_by=n.required_by)
    return replace(
        nearest,
        rule=f"{nearest.rule}; group: {GROUP_RULE}",
        pins=plan.pins,
        deviations=tuple(sorted(deviations.values(), key=lambda d: d.name)),
        additions=tuple(sorted(additions.values(), key=lambda a: a.name)),
    )
