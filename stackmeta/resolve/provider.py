"""The resolvelib provider of the nearest-set search: requirements and candidates over a
:class:`~stackmeta.resolve.candidates.CandidateSource`, candidates tried nearest first
(:func:`stackmeta.index.source.nearest_order`), memoised across the many resolutions of one
search; and :func:`dependents`, the count the rule ranks packages by."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider

from stackmeta.index.source import nearest_order
from stackmeta.resolve.candidates import CandidateSource
from stackmeta.target import Target


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Req:
    """A requirement (identity equality: each is made once and memoised, so its cached
    answers to "does this version satisfy me" are found fast)."""

    name: NormalizedName
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written (for reasons)
    answers: dict[Version, bool] = field(default_factory=dict, repr=False)
    key: str = field(init=False, repr=False)  # resolvelib's identifier, asked for very often

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key(self.name, self.extras))

    def allows(self, version: Version) -> bool:
        found = self.answers.get(version)
        if found is None:
            found = self.answers[version] = self.specifier.contains(version, prereleases=True)
        return found


@dataclass(frozen=True, kw_only=True, slots=True)
class Cand:
    name: NormalizedName
    extras: frozenset[str]
    version: Version
    key: str = field(init=False, repr=False, compare=False)  # resolvelib's identifier

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key(self.name, self.extras))

    def __str__(self) -> str:
        return f"{self.key} {self.version}"


@lru_cache(maxsize=1 << 12)
def asks_for_pre(specifier: SpecifierSet) -> bool:
    """Whether *specifier* asks for a pre-release: an inclusive comparison (``==``, ``===``,
    ``>=``, ``<=``, ``~=``) with a pre-release version (packaging's rule up to 24; from 25
    ``<5.0.0dev``, the common way to keep 5.0's pre-releases *out*, counts too, which would
    open every protobuf 4 pre-release to a requirement ``protobuf<5.0.0dev,>=3.20``)."""
    for spec in specifier:
        if spec.operator in ("==", "===", ">=", "<=", "~="):
            text = spec.version[:-2] if spec.version.endswith(".*") else spec.version
            try:
                if Version(text).is_prerelease:
                    return True
            except InvalidVersion:
                continue
    return False


def _key(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


def series(version: Version) -> tuple[int, int, int]:
    """The release series of *version*: its epoch, major and minor (2.12.1 is in 2.12)."""
    release = version.release
    return version.epoch, release[0], release[1] if len(release) > 1 else 0


class Memo:
    """A CandidateSource's answers, asked once each (the resolver asks again and again).

    Every answer is remembered, so that another cell's source can be asked the same questions
    (:meth:`answers`, :meth:`Answers.same`): when it answers them all alike, the search, which
    is a function of these answers, finds the same set there."""

    MAX_FAILED_BUILDS = 3  # sdists of one project that failed to build before the rest are not tried
    READ_AHEAD = 8  # versions whose requirements are asked for at once when the first is not at hand

    def __init__(self, source: CandidateSource) -> None:
        self.source = source
        self._installable: dict[tuple[NormalizedName, Version], tuple[bool, str]] = {}
        # dependencies the search found uninstallable here (they require what the cell cannot
        # install): no candidate, so what requires them is left out in turn; name -> why
        self.excluded: dict[NormalizedName, str] = {}
        # versions the search found uninstallable here, the others of the project being fine:
        # no candidate; name -> {version: why}
        self.excluded_versions: dict[NormalizedName, dict[Version, str]] = {}
        self._failed_builds: dict[NormalizedName, int] = {}
        self._wheels: dict[tuple[NormalizedName, Version], bool] = {}
        self._versions: dict[NormalizedName, frozenset[Version]] = {}
        self._series: dict[NormalizedName, list[tuple[int, int, int]]] = {}
        self._deps: dict[tuple[NormalizedName, Version], Sequence[Requirement] | None] = {}
        # (name, version, extras) -> its requirements for the target, markers evaluated
        self.evaluated: dict[tuple[NormalizedName, Version, frozenset[str]], tuple[Req, ...]] = {}
        self.unknown: set[tuple[NormalizedName, Version]] = set()
        # (name, version) -> its requirements and its wrapped ones (Provider.effective_dependencies)
        self.effective: dict[tuple[NormalizedName, Version], tuple[Req, ...]] = {}
        # (name, preferred version) -> its versions in the order the search tries them
        self.ordered: dict[tuple[NormalizedName, Version | None, bool], list[Version]] = {}
        # (name, preferred version, the requirements' answers) -> the versions of that order the
        # requirements allow: requirements alike (one name, one specifier: a dependency most
        # versions of a package require alike) share one dict of answers (shared_answers), so
        # one key; a key holds the ids of those dicts, kept alive in _keys (ids never reused)
        self.wanted: dict[tuple[NormalizedName, Version | None, frozenset[int]], list[Version]] = {}
        self._keys: list[dict[Version, bool]] = []
        self._answers: dict[tuple[NormalizedName, str], dict[Version, bool]] = {}
        self._roots: dict[tuple[NormalizedName, Version | None], Req] = {}
        self._cands: dict[tuple[NormalizedName, frozenset[str], Version], Cand] = {}
        # a hard pin's root requirement -> (name, version) and its criterion as a resolution
        # starts with it (FastResolution._add_root): valid while Provider.still_one says so
        self.hard_roots: dict[Req, tuple[tuple[NormalizedName, Version], Any]] = {}

    def cand(self, name: NormalizedName, extras: frozenset[str], version: Version) -> Cand:
        """The candidate *name* [*extras*] *version*, made once for the search's many resolutions."""
        key = (name, extras, version)
        found = self._cands.get(key)
        if found is None:
            found = self._cands[key] = Cand(name=name, extras=extras, version=version)
        return found

    def shared_answers(self, name: NormalizedName, specifier: SpecifierSet) -> dict[Version, bool]:
        """The answers ("does this version satisfy it") of every requirement of *name* with this
        specifier: one dict for all of them."""
        return self._answers.setdefault((name, str(specifier)), {})

    def wanted_list(self, name: NormalizedName, preferred: Version | None, reqs: Sequence[Req],
                    make: Callable[[], list[Version]]) -> list[Version]:
        """The versions of *name* (nearest *preferred* first) that *reqs* allow, made by *make*
        once per set of requirements (requirements alike counted once)."""
        key = (name, preferred, frozenset([id(r.answers) for r in reqs]))
        found = self.wanted.get(key)
        if found is None:
            found = self.wanted[key] = make()
            self._keys.extend(r.answers for r in reqs)
        return found

    def root(self, name: NormalizedName, version: Version | None = None) -> Req:
        """The search's requirement of *name* at *version* (any version when None), made once."""
        key = (name, version)
        found = self._roots.get(key)
        if found is None:
            found = self._roots[key] = (
                Req(name=name, extras=frozenset(), specifier=SpecifierSet(), text=name) if version is None
                else Req(name=name, extras=frozenset(), specifier=SpecifierSet(f"=={version}"),
                         text=f"{name}=={version}"))
        return found

    def versions(self, name: NormalizedName) -> frozenset[Version]:
        if name not in self._versions:
            self._versions[name] = frozenset(self.source.versions(name))
        return self._versions[name]

    def series(self, name: NormalizedName) -> list[tuple[int, int, int]]:
        """The release series (:func:`series`) of *name*'s versions, ascending, each once."""
        found = self._series.get(name)
        if found is None:
            found = self._series[name] = sorted({series(v) for v in self.versions(name)})
        return found

    def has_wheel(self, name: NormalizedName, version: Version, target: Target) -> bool:
        """Whether that version has a wheel for *target* (True when the source cannot say)."""
        key = (name, version)
        if key not in self._wheels:
            self._wheels[key] = self._ask_wheel(name, version, target)
        return self._wheels[key]

    def wheel_here(self, name: NormalizedName, version: Version, target: Target) -> bool:
        """:meth:`has_wheel`, not kept among the answers (:meth:`answers`) when not asked
        before: for reading ahead, which asks only from a cold cache, so that what a search was
        asked is the same from a cold cache and a warm one."""
        known = self._wheels.get((name, version))
        return self._ask_wheel(name, version, target) if known is None else known

    def _ask_wheel(self, name: NormalizedName, version: Version, target: Target) -> bool:
        files = getattr(self.source, "files", None)
        ask = getattr(self.source, "has_wheel", None)
        return files is None or (
            ask(name, version) if ask is not None and getattr(self.source, "target", None) == target
            else any(target.wheel_rank(f.filename) is not None for f in files(name, version)))

    def on_index(self, name: NormalizedName, version: Version) -> bool:
        """Whether the index has any file of that version (for any Python or platform; False
        when the source cannot say)."""
        files = getattr(self.source, "files", None)
        return files is not None and bool(files(name, version))

    def installable(self, name: NormalizedName, version: Version, target: Target) -> tuple[bool, str]:
        """Whether the target can install that version, and why not (a source that cannot
        judge says yes). An sdist-only version is built to find out; after
        :data:`MAX_FAILED_BUILDS` failed builds of one project its other sdists are not tried."""
        key = (name, version)
        if key not in self._installable:
            judge = getattr(self.source, "installable", None)
            if judge is None:
                self._installable[key] = (True, "")
            elif not self.has_wheel(name, version, target) \
                    and self._failed_builds.get(name, 0) >= self.MAX_FAILED_BUILDS:
                self._installable[key] = (False, f"not built: {self.MAX_FAILED_BUILDS} nearer sdists of "
                                                 f"{name} did not build")
            else:
                found = judge(name, version)
                self._installable[key] = (found.installable, found.reason)
                if found.how == "built":  # its requirements are now those of the wheel it built
                    self._deps.pop(key, None)
                    for k in [k for k in self.evaluated if k[:2] == key]:
                        del self.evaluated[k]
                if not found.installable and found.how == "none" and found.file is not None:
                    self._failed_builds[name] = self._failed_builds.get(name, 0) + 1
        return self._installable[key]

    def build_ahead(self, name: NormalizedName, version: Version, target: Target) -> None:
        """Let the source start finding out, in the background, whether *target* can install
        that version (building its sdist), when it is not known yet and its project's builds
        have not failed too often."""
        ahead = getattr(self.source, "build_ahead", None)
        if ahead is None or (name, version) in self._installable \
                or self._failed_builds.get(name, 0) >= self.MAX_FAILED_BUILDS \
                or self.has_wheel(name, version, target):
            return
        ahead(name, version)

    def answers(self, shared: dict[Any, Any] | None = None) -> Answers:
        """What this memo's search asked and was told (its versions, wheels, installability and
        evaluated requirements), without the search's own caches: kept for each cell searched,
        to compare another cell's source with (:meth:`Answers.same`). Kept small: grouped by
        project, and each answer that a cell before gave alike (most are) is that one's object,
        through *shared* (one dict for all the cells of a release)."""
        table: dict[Any, Any] = {} if shared is None else shared

        def one(value: Any) -> Any:
            return table.setdefault(value, value)

        asked: dict[NormalizedName, list[Version]] = {}
        for name, version in self._wheels:
            asked.setdefault(name, []).append(version)
        return Answers(
            versions=tuple((name, one(versions)) for name, versions in self._versions.items()),
            wheels=tuple((name, one(tuple(versions)),
                          one(frozenset(v for v in versions if self._wheels[(name, v)])))
                         for name, versions in asked.items()),
            installable=tuple((name, version, ok) for (name, version), (ok, _) in self._installable.items()),
            evaluated=tuple((key, one(tuple(r.text for r in reqs)))
                            for key, reqs in self.evaluated.items()))

    def ahead(self, name: NormalizedName, versions: Sequence[Version],
              first: int = READ_AHEAD) -> Iterator[Version]:
        """*versions* of *name*, one by one, read ahead (:meth:`read_ahead`) in batches just
        before they are reached: *first*, then twice as many each time. A caller that stops
        early reads little more than it needs (most stop at the first few versions), one that
        goes through them all waits on a few batches."""
        size, end = first, 0
        for i, version in enumerate(versions):
            if i >= end and self.read_ahead(name, versions, i, size):
                end, size = i + size, size * 2
            yield version

    def read_ahead(self, name: NormalizedName, versions: Sequence[Version], at: int,
                   size: int = READ_AHEAD) -> bool:
        """Before ``versions[at]`` is judged or its requirements read: when its metadata would
        be a request (a cold cache), ask at once for that of the next *size* versions with a
        wheel for the target, which a caller going through versions one by one reaches next.
        Nothing when it is at hand: a warm run reads nothing it does not use. Whether a batch
        was asked for."""
        version = versions[at]
        target = getattr(self.source, "target", None)
        if target is None or (name, version) in self._deps or (name, version) in self._installable \
                or self.at_hand(name, version):
            return False
        self.prefetch([(name, v) for v in versions[at:at + size]
                       if (name, v) not in self._deps and self.wheel_here(name, v, target)])
        return True

    def at_hand(self, name: NormalizedName, version: Version) -> bool:
        """Whether the source has that version's metadata without a request (True when it
        cannot tell: then nothing is read ahead)."""
        at_hand = getattr(self.source, "at_hand", None)
        return at_hand is None or bool(at_hand(name, version))

    def prefetch(self, pins: Sequence[tuple[NormalizedName, Version]]) -> None:
        """Ask the source for the metadata of *pins* at once (when it can, and they are more
        than one: one is read where it is needed)."""
        batch = getattr(self.source, "prefetch_dependencies", None)
        if batch is not None and len(pins) > 1:
            batch(pins)

    def dependencies(self, name: NormalizedName, version: Version) -> Sequence[Requirement] | None:
        key = (name, version)
        if key not in self._deps:
            self._deps[key] = self.source.dependencies(name, version)
        return self._deps[key]


@dataclass(frozen=True, kw_only=True, slots=True)
class Answers:
    """A search's questions to its source and the answers (:meth:`Memo.answers`), in the order
    they were first asked."""

    versions: tuple[tuple[NormalizedName, frozenset[Version]], ...]
    # per project: the versions asked whether they have a wheel, and those that have
    wheels: tuple[tuple[NormalizedName, tuple[Version, ...], frozenset[Version]], ...]
    installable: tuple[tuple[NormalizedName, Version, bool], ...]
    # (name, version, extras) -> its requirements for the target (name, extras and specifier:
    # Req.text, made once with the requirement)
    evaluated: tuple[tuple[tuple[NormalizedName, Version, frozenset[str]], tuple[str, ...]], ...]

    def interned(self, shared: dict[Any, Any]) -> Answers:
        """These answers, each one alike in an earlier cell's (*shared*, as for
        :meth:`Memo.answers`) that one's object, and the versions in a collection not seen
        before each an earlier one's too: for answers made elsewhere (another thread's memo,
        another process's, whose every object is new here: a second process's answers for one
        cell are ~300,000 objects, 40,000 of them versions)."""

        def one(value: Any) -> Any:
            return shared.setdefault(value, value)

        def each(values: Any) -> Any:  # a tuple or frozenset of versions
            found = shared.get(values)
            return found if found is not None else one(type(values)(map(one, values)))

        return Answers(versions=tuple((n, each(v)) for n, v in self.versions),
                       wheels=tuple((n, each(asked), each(have)) for n, asked, have in self.wheels),
                       installable=tuple((n, one(v), ok) for n, v, ok in self.installable),
                       evaluated=tuple(((n, one(v), one(extras)), one(reqs))
                                       for (n, v, extras), reqs in self.evaluated))

    def same(self, other: Memo, target: Target) -> bool:
        """Whether *other*'s source answers every question alike, asking them (installability,
        which may build, in the order this search asked it)."""
        for name, versions in self.versions:
            if other.versions(name) != versions:
                return False
        for name, asked, with_wheel in self.wheels:
            for version in asked:
                if other.has_wheel(name, version, target) != (version in with_wheel):
                    return False
        for name, version, ok in self.installable:
            if other.installable(name, version, target)[0] != ok:
                return False
        probe = Provider(other, target, hard={}, preferred={}, rank={})
        for (name, version, extras), reqs in self.evaluated:
            theirs = probe.dependencies_of(name, version, extras)
            if tuple(r.text for r in theirs) != reqs:
                return False
        return True


def _conflict_names(causes: Sequence[Any]) -> set[NormalizedName]:
    """The packages a conflict's causes name: each requirement's, and each requirer's."""
    return {c.requirement.name for c in causes} | {c.parent.name for c in causes if c.parent is not None}


_NO_VERSIONS: frozenset[Version] = frozenset()


class _Usable:
    """The versions of a list (nearest first) a provider found usable (:meth:`Provider._usable`),
    and how far into the list it has looked."""

    __slots__ = ("found", "next", "wanted")

    def __init__(self, wanted: list[Version]) -> None:
        self.wanted = wanted
        self.found: list[Version] = []
        self.next = 0


class Matches:
    """The candidates of a moved pin or a dependency (:meth:`Provider.matches`), nearest first:
    resolvelib calls it for an iterator of them. Lazy: metadata is read only for the versions
    tried; what one resolution found usable of a list of versions is kept for its next asking
    (*view*); the versions backjumping ruled out (*bad*) are passed over. :meth:`any` says
    whether there is one."""

    __slots__ = ("bad", "cand", "extras", "name", "usable", "view")

    def __init__(self, name: NormalizedName, extras: frozenset[str], bad: frozenset[Version], view: _Usable,
                 usable: Callable[[NormalizedName, Sequence[Version], int], bool],
                 cand: Callable[[NormalizedName, frozenset[str], Version], Cand]) -> None:
        self.name, self.extras, self.bad, self.view = name, extras, bad, view
        self.usable, self.cand = usable, cand

    def __call__(self) -> Iterator[Cand]:
        name, extras, bad, view, cand = self.name, self.extras, self.bad, self.view, self.cand
        found, wanted, i = view.found, view.wanted, 0
        while True:
            if i < len(found):
                version = found[i]
                i += 1
                if version not in bad:
                    yield cand(name, extras, version)
                continue
            if view.next >= len(wanted):
                return
            at = view.next
            view.next += 1
            if self.usable(name, wanted, at):
                found.append(wanted[at])

    def any(self) -> bool:
        """Whether :meth:`__call__` gives a candidate: its first, from one iterator (resolvelib's
        view would make it and a copy of it, for every requirement added)."""
        return next(self(), None) is not None


class _Order(dict[str, tuple[int, int, str]]):
    """identifier -> (0 for a hard pin else 1, minus its rank, identifier): made on first asking.
    It holds what it needs, not the provider (a cycle would leave every provider of a search,
    with all it found, to the cyclic garbage collector, whose full passes then cost a third of
    the search's time)."""

    def __init__(self, hard: Mapping[NormalizedName, Version], rank: Mapping[NormalizedName, int]) -> None:
        super().__init__()
        self.hard = hard
        self.rank = rank
        self.names: dict[str, NormalizedName] = {}  # identifier -> its project's name
        self.identifiers: dict[NormalizedName, set[str]] = {}  # name -> its identifiers ordered

    def name(self, identifier: str) -> NormalizedName:
        found = self.names.get(identifier)
        if found is None:
            found = self.names[identifier] = canonicalize_name(identifier.split("[")[0])
        return found

    def __missing__(self, identifier: str) -> tuple[int, int, str]:
        name = self.name(identifier)
        self.identifiers.setdefault(name, set()).add(identifier)
        found = self[identifier] = (0 if name in self.hard else 1, -self.rank.get(name, 0), identifier)
        return found


class Provider(AbstractProvider[Req, Cand, str]):
    """resolvelib's view of a CandidateSource, for one target, with hard and soft pins."""

    def __init__(self, source: Memo, target: Target, *, hard: Mapping[NormalizedName, Version],
                 preferred: Mapping[NormalizedName, Version], rank: Mapping[NormalizedName, int]) -> None:
        self.source = source
        self.target = target
        self.hard = hard
        self.preferred = preferred
        self.rank = rank
        # id of a list of versions of memo.wanted -> what of it this provider found usable so far
        self._views: dict[int, _Usable] = {}
        self._fits: dict[tuple[NormalizedName, Version], bool] = {}  # fits(name, version, self.hard)
        # identifier -> its order in narrow_requirement_selection but for the last conflict
        self._order = _Order(hard, rank)
        self._bads: dict[int, tuple[Collection[Cand], frozenset[Version]]] = {}  # see bad_versions

    def versions(self, name: NormalizedName, pre: bool = False) -> list[Version]:
        """Nearest first; versions with a wheel for the target before sdist-only ones (an
        sdist may not even build on the target's Python); pre-releases only when *pre* (or
        the release's version is one), and then after the final releases. Kept in the memo:
        every provider of the search asks for the same orders."""
        key = (name, self.preferred.get(name), pre)
        found = self.source.ordered.get(key)
        if found is None:
            release = key[1]
            order = nearest_order(self.source.versions(name), release, pre=pre)
            final_first = pre and not (release is not None and release.is_prerelease)
            # a pre-release only after every final release (keras>=2.8.0rc0 takes 2.8.0)
            found = self.source.ordered[key] = sorted(order, key=lambda v: (
                final_first and v.is_prerelease, not self.source.has_wheel(name, v, self.target)))
        return found

    def allowed(self, name: NormalizedName, reqs: Sequence[Req]) -> list[Version]:
        """The versions of :meth:`versions` that *reqs* allow, pre-releases too when a
        requirement asks for one (:func:`asks_for_pre`: tensorflow 2.8.0 requires
        ``tf-estimator-nightly==2.8.0.dev2021122109``, a project of pre-releases only). Where
        none asks, the search takes no pre-release (pip would fall back on them when nothing
        else is allowed; following that, a requirement of tf-keras-nightly led the resolver
        through hundreds of tf-nightly builds into no set at all): the sets it finds are pip's
        all the same, every pin exact."""
        pre = any(asks_for_pre(r.specifier) for r in reqs)
        return [v for v in self.versions(name, pre=pre) if all(r.allows(v) for r in reqs)]

    def identify(self, requirement_or_candidate: Req | Cand) -> str:
        return requirement_or_candidate.key

    def order_of(self, identifier: str) -> tuple[int, int, str]:
        """*identifier*'s place in :meth:`narrow_requirement_selection`'s order when no
        conflict is named: (0 for a hard pin else 1, minus its rank, identifier)."""
        return self._order[identifier]

    def get_preference(self, identifier: str, resolutions: Mapping[str, Cand],
                       candidates: Mapping[str, Iterator[Cand]], information: Mapping[str, Iterator[Any]],
                       backtrack_causes: Sequence[Any]) -> tuple[int, int, int, str]:
        # hard pins first (one candidate each), then what the last conflict named (as pip
        # does), then what more of the stack depends on (see _Order)
        hard, minus_rank, _ = self._order[identifier]
        in_conflict = self._order.name(identifier) in _conflict_names(backtrack_causes)
        return (hard, 0 if in_conflict else 1, minus_rank, identifier)

    def narrow_requirement_selection(self, identifiers: Iterable[str], resolutions: Mapping[str, Cand],
                                     candidates: Mapping[str, Iterator[Cand]],
                                     information: Mapping[str, Iterator[Any]],
                                     backtrack_causes: Sequence[Any]) -> list[str]:
        """The one identifier :meth:`get_preference` prefers (its order is total: the
        identifier decides the last tie), found without asking it once per identifier."""
        if not isinstance(identifiers, (list, tuple, set, frozenset)):
            identifiers = list(identifiers)
        order = self._order
        best = min(identifiers, key=order.__getitem__)
        if not backtrack_causes:
            return [best]
        # what the last conflict named comes next after the hard pins (of the same kind as best)
        conflict = _conflict_names(backtrack_causes)
        asked = identifiers if isinstance(identifiers, (set, frozenset)) else set(identifiers)
        hard = order[best][0]
        named = [i for n in conflict for i in order.identifiers.get(n, ())
                 if i in asked and order[i][0] == hard]
        return [min(named, key=order.__getitem__)] if named else [best]

    def find_matches(self, identifier: str, requirements: Mapping[str, Iterator[Req]],
                     incompatibilities: Mapping[str, Iterator[Cand]]) -> Matches | tuple[Cand, ...]:
        # resolvelib's patching: the incompatibilities are a new chain of lists each time
        bad = frozenset(c.version for c in incompatibilities[identifier])
        return self.matches(identifier, list(requirements[identifier]), bad)

    def matches(self, identifier: str, reqs: Sequence[Req], bad: frozenset[Version],
                ) -> Matches | tuple[Cand, ...]:
        """:meth:`find_matches` of *identifier*, given its requirements and the versions its
        incompatibilities rule out (:meth:`bad_versions`): a hard pin's one candidate (or none)
        as a tuple, anything else's as :class:`Matches`."""
        if reqs:
            name, extras = reqs[0].name, reqs[0].extras
        else:  # backjumping can leave a criterion whose requirements were all withdrawn
            bare, _, rest = identifier.partition("[")
            name = canonicalize_name(bare)
            extras = frozenset(e for e in rest.rstrip("]").split(",") if e)
        source = self.source
        if name in source.excluded:
            return ()
        if name in self.hard:
            pinned = self.hard[name]
            if pinned not in source.versions(name) or pinned in bad \
                    or not all(r.allows(pinned) for r in reqs) \
                    or pinned in source.excluded_versions.get(name, ()) \
                    or not source.installable(name, pinned, self.target)[0]:
                return ()
            return (source.cand(name, extras, pinned),)
        # the same requirements come again and again (every resolution of the search); the
        # versions backjumping ruled out (*bad*) differ nearly every time, so they are passed
        # over as the list is gone through (a list kept per set of them: hundreds of thousands
        # of lists in a long search)
        wanted = source.wanted_list(name, self.preferred.get(name), reqs, lambda: self.allowed(name, reqs))
        view = self._views.get(id(wanted))
        if view is None or view.wanted is not wanted:
            view = self._views[id(wanted)] = _Usable(wanted)
        return Matches(name, extras, bad, view, self._usable, source.cand)

    def bad_versions(self, incompatibilities: Collection[Cand]) -> frozenset[Version]:
        """The versions of a criterion's *incompatibilities*, a collection never changed: the
        same one comes many times over (a criterion keeps it when a requirement is added to
        it), so the answer is kept, with the collection (its id is not reused while kept)."""
        if not incompatibilities:
            return _NO_VERSIONS
        found = self._bads.get(id(incompatibilities))
        if found is None:
            found = self._bads[id(incompatibilities)] = (incompatibilities,
                                                         frozenset(c.version for c in incompatibilities))
        return found[1]

    def still_one(self, name: NormalizedName, version: Version) -> bool:
        """Whether *name* is hard-pinned at *version* and the search has not ruled it out since
        :meth:`matches` gave it as the one candidate of a root requirement (its installability
        and place on the index do not change)."""
        source = self.source
        return self.hard.get(name) == version and name not in source.excluded \
            and version not in source.excluded_versions.get(name, ())

    def keeps_candidates(self, requirement: Req) -> bool:
        """Whether adding *requirement* to an existing criterion of its identifier leaves the
        criterion's candidates as they are: a hard pin's one (the pin), which it allows."""
        pinned = self.hard.get(requirement.name)
        return pinned is not None and requirement.allows(pinned)

    def _usable(self, name: NormalizedName, wanted: Sequence[Version], at: int) -> bool:
        """Whether the resolver may try *name* at ``wanted[at]``: installable here, not passed
        over by the search, and for a moved pin, its own requirements accepting every hard pin."""
        source, v = self.source, wanted[at]
        if v in source.excluded_versions.get(name, ()):
            return False
        if source.read_ahead(name, wanted, at) and name not in self.hard and name in self.preferred:
            self._read_wrapped_ahead(name, wanted[at:at + source.READ_AHEAD])  # fits() reads them
        if at + 1 < len(wanted) and not source.has_wheel(name, v, self.target):
            # an sdist-only version is about to be built: build the next one meanwhile
            source.build_ahead(name, wanted[at + 1], self.target)
        if not source.installable(name, v, self.target)[0]:
            return False  # an sdist that does not build into a pure-Python wheel
        if name not in self.hard and name in self.preferred:
            # a moved pin: only versions whose own requirements accept every hard pin
            fit = self._fits.get((name, v))
            if fit is None:
                fit = self._fits[(name, v)] = self.fits(name, v, self.hard)
            return fit
        return True

    def fits(self, name: NormalizedName, version: Version, hard: Mapping[NormalizedName, Version]) -> bool:
        """Whether *name* *version*'s requirements (through its wrapped packages: see
        :meth:`effective_dependencies`) accept every pin of *hard*."""
        for dep in self.effective_dependencies(name, version):
            pinned = hard.get(dep.name)
            if pinned is not None and dep.name != name and not dep.allows(pinned):
                return False
        return True

    def effective_dependencies(self, name: NormalizedName, version: Version) -> list[Req]:
        """The requirements of *name* *version*, and those of each package it requires at
        exactly one version that the release does not ship: a wrapper installs them whatever
        else is chosen (tensorflow 2.12.0 on Windows is ``tensorflow-intel==2.12.0``, whose
        requirements are tensorflow's on Linux), so a moved pin is judged by them as by its own."""
        key = (name, version)
        found = self.source.effective.get(key)
        if found is None:
            out = self.dependencies_of(name, version)
            for dep in list(out):
                wrapped = self._wrapped(name, dep.name, dep.specifier)
                if wrapped is not None and wrapped in self.source.versions(dep.name):
                    self._wrapped_miss(name, version, dep.name, wrapped)
                    out += [Req(name=d.name, extras=d.extras, specifier=d.specifier,
                                text=f"{d.text} (through {dep.name} {wrapped})", answers=d.answers)
                            for d in self.dependencies_of(dep.name, wrapped) if d.name != name]
            found = self.source.effective[key] = tuple(out)
        return list(found)

    def _wrapped(self, name: NormalizedName, dep: NormalizedName, specifier: SpecifierSet) -> Version | None:
        """The one version at which *name* requires *dep* (*specifier*), a package the release
        does not ship, or None."""
        exact = [s for s in specifier if s.operator in ("==", "===") and "*" not in s.version]
        if dep in self.preferred or dep == name or len(exact) != 1:
            return None
        try:
            return Version(exact[0].version)
        except InvalidVersion:
            return None

    def _wrapped_miss(self, name: NormalizedName, version: Version, dep: NormalizedName,
                      wrapped: Version) -> None:
        """Before *dep* *wrapped* (which *name* *version* wraps) is read: when it is not at hand
        (a cold cache), the packages the next versions of *name* wrap are asked for with it."""
        if self.source.at_hand(dep, wrapped):
            return
        order = self.versions(name)
        at = order.index(version) if version in order else len(order)
        self._read_wrapped_ahead(name, [version, *order[at + 1:at + self.source.READ_AHEAD]])

    def _read_wrapped_ahead(self, name: NormalizedName, versions: Sequence[Version]) -> None:
        """After the metadata of *versions* was read ahead: that of the packages they wrap
        (:meth:`effective_dependencies`), asked for at once too, when not at hand."""
        source = self.source
        todo = []
        for version in versions:
            if (name, version) in source.effective or not source.wheel_here(name, version, self.target) \
                    or not source.at_hand(name, version):  # only what the batch read: no request here
                continue
            for req in source.dependencies(name, version) or ():  # as read: nothing is evaluated
                if not self.target.evaluate(req.marker):
                    continue
                dep = canonicalize_name(req.name)
                wrapped = self._wrapped(name, dep, req.specifier)
                if wrapped is not None and not source.at_hand(dep, wrapped):
                    todo.append((dep, wrapped))
        source.prefetch(todo)

    def is_satisfied_by(self, requirement: Req, candidate: Cand) -> bool:
        found = requirement.answers.get(candidate.version)
        return requirement.allows(candidate.version) if found is None else found

    def dependencies_of(self, name: NormalizedName, version: Version,
                        extras: frozenset[str] = frozenset()) -> list[Req]:
        return list(self._dependencies(name, version, extras))

    def _dependencies(self, name: NormalizedName, version: Version,
                      extras: frozenset[str] = frozenset()) -> tuple[Req, ...]:
        key = (name, version, extras)
        found = self.source.evaluated.get(key)
        if found is None:
            found = self.source.evaluated[key] = self._evaluate(name, version, extras)
        return found

    def _evaluate(self, name: NormalizedName, version: Version, extras: frozenset[str]) -> tuple[Req, ...]:
        deps = self.source.dependencies(name, version)
        if deps is None:
            self.source.unknown.add((name, version))
            return ()
        out = []
        for req in deps:
            if not self.target.evaluate(req.marker, extras):
                continue
            dep = canonicalize_name(req.name)
            if dep == name and not req.extras:
                continue
            out.append(Req(name=dep, extras=frozenset(canonicalize_name(e) for e in req.extras),
                           specifier=req.specifier, text=_req_text(req),
                           answers=self.source.shared_answers(dep, req.specifier)))
        return tuple(out)

    def get_dependencies(self, candidate: Cand) -> list[Req]:
        deps = self.dependencies_of(candidate.name, candidate.version, candidate.extras)
        if candidate.extras:
            specifier = SpecifierSet(f"=={candidate.version}")
            deps.append(Req(name=candidate.name, extras=frozenset(), specifier=specifier,
                            text=f"{candidate.name}=={candidate.version}",
                            answers=self.source.shared_answers(candidate.name, specifier)))
        return deps


def _req_text(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}"


def dependents(graph: Mapping[NormalizedName, set[NormalizedName]]) -> dict[NormalizedName, int]:
    """For each package, how many packages of *graph* (name -> its dependencies) depend on it,
    directly or transitively."""
    reverse: dict[NormalizedName, set[NormalizedName]] = {n: set() for n in graph}
    for who, deps in graph.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(who)
    out: dict[NormalizedName, int] = {}
    for node in reverse:
        seen: set[NormalizedName] = set()
        stack = [node]
        while stack:
            for parent in reverse.get(stack.pop(), ()):
                if parent not in seen and parent != node:
                    seen.add(parent)
                    stack.append(parent)
        out[node] = len(seen)
    return out
