"""resolvelib's resolution, each round's bookkeeping done in proportion to what the round changed.

resolvelib (1.2) starts every round by asking, for every criterion, whether its pin still
satisfies it, and after a pin asks again of every criterion: two passes over all the criteria
a round, and a search pins every package of the set (300 and more) in as many rounds, several
dozen times a cell. :class:`FastResolution` runs resolvelib's own loop
(:meth:`resolvelib.resolvers.Resolution.resolve`, the same steps in the same order, its
backjumping untouched) but keeps the set of unsatisfied criteria from round to round: a
successful pin changes only the pinned criterion and those of the candidate's dependencies
(:meth:`_get_updated_criteria` notes them), so only those are asked again; whatever else
changes the state (a backjump, a rollback, information withdrawn from criteria) makes it ask
every criterion again, as resolvelib does. The answer is also kept per criterion and pin
(criteria are never changed, only replaced).

Backjumping too, step for step as resolvelib's, without its growing lists: resolvelib patches
every criterion the broken state had incompatibilities for (asking the provider again) and
appends the criterion's own to them, so the same candidates pile up with every backjump. Here
only the incompatibilities a criterion does not have yet are applied, and a criterion with
none new keeps its candidates (:meth:`FastResolution._patch_criteria`); the provider takes
incompatibilities as a set, so its answers are the same.

The provider's :meth:`narrow_requirement_selection` must not depend on the order of the names
it is given (:class:`~stackmeta.resolve.provider.Provider`'s picks the least by a total
order): the unsatisfied names come from a set, not in the order of the criteria.

The hard pins first, in one state: the provider puts every hard pin (one candidate each)
before anything else, so a resolution's first rounds pin them one by one, in an order fixed by
the provider, each round copying the state (hundreds of entries) for a backjump that can never
land there (a hard pin has no other candidate: patching one leaves it none). Here they are
pinned in that order into one state, with no copies (:meth:`FastResolution._pin_hard`); the
rounds are counted as rounds. What follows is resolvelib's loop on the same state. A backjump
that reaches the hard pins fails as resolvelib's would, popping them one by one; when that
ends an optimistic backjump before any state was saved, resolvelib would have saved the stack
at the first hard pin the conflict does not name and, after the rollback, pinned the hard pins
popped above it again: the saved stack is the hard pins' state (the same state the pinning
again gives). A conflict among the hard pins themselves cannot resolve (their requirements
are fixed); the resolution is then run resolvelib's way from the start, for resolvelib's own
causes, unless the caller needs no causes (:meth:`FastResolver.resolve`).

``tests/resolve/test_resolution.py`` compares it with resolvelib's own on real searches.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Collection, Iterable
from typing import Any

from resolvelib import Resolver
from resolvelib.resolvers import Criterion, Resolution
from resolvelib.resolvers.exceptions import RequirementsConflicted, ResolutionImpossible, ResolutionTooDeep
from resolvelib.resolvers.resolution import _build_result
from resolvelib.structs import IteratorMapping, RequirementInformation, State, build_iter_view

from stackmeta.resolve.provider import Cand, Matches, Provider, Req


class FastResolution(Resolution[Req, Cand, str]):
    """resolvelib's resolution, the unsatisfied criteria kept from round to round (see the
    module's docstring)."""

    def __init__(self, provider: Any, reporter: Any, *, hard_first: bool = True) -> None:
        super().__init__(provider, reporter)
        self._provider: Provider = provider
        self._satisfying: dict[Criterion[Req, Cand], tuple[Cand, bool]] = {}
        self._touched: list[tuple[str, bool]] = []  # the last pin's criteria (identifier, existed before)
        self._hard_first = hard_first
        # the hard pins' state (_pin_hard): while it is the top, pins change its criteria themselves
        self._hard_state: State[Req, Cand, str] | None = None

    def _is_current_pin_satisfying(self, name: str, criterion: Criterion[Req, Cand]) -> bool:
        pin: Cand | None = self.state.mapping.get(name)
        if pin is None:
            return False
        hit = self._satisfying.get(criterion)
        if hit is not None and hit[0] is pin:
            return hit[1]
        version = pin.version
        ok = all(i.requirement.allows(version) for i in criterion.information)
        self._satisfying[criterion] = (pin, ok)
        return ok

    def _add_to_criteria(self, criteria: dict[str, Criterion[Req, Cand]], requirement: Req,
                         parent: Cand | None, base: dict[str, Criterion[Req, Cand]] | None = None) -> None:
        # *criteria* gets the new criterion; the one it replaces is there, or else in *base*
        # (the state's, when *criteria* holds only a pin's changes: _get_updated_criteria).
        # A requirement of a hard pin that allows the pin leaves its criterion's one candidate
        # as it is (the provider would answer the same): resolvelib's criterion, without asking
        criterion = criteria.get(requirement.key)
        if criterion is None and base is not None:
            criterion = base.get(requirement.key)
        if criterion is not None and self._provider.keeps_candidates(requirement):
            self._r.adding_requirement(requirement=requirement, parent=parent)
            criteria[requirement.key] = Criterion(
                candidates=criterion.candidates,
                information=[*criterion.information, RequirementInformation(requirement, parent)],
                incompatibilities=criterion.incompatibilities)
            return
        # resolvelib's own, the provider asked directly (the requirements and incompatibilities
        # of this identifier, in resolvelib's order) instead of through two IteratorMappings
        self._r.adding_requirement(requirement=requirement, parent=parent)
        key = requirement.key
        if criterion is not None:
            incompatibilities = criterion.incompatibilities  # never changed: shared, not copied
            information = [*criterion.information, RequirementInformation(requirement, parent)]
        else:
            incompatibilities, information = [], [RequirementInformation(requirement, parent)]
        matches = self._provider.matches(key, [i.requirement for i in information],
                                         self._provider.bad_versions(incompatibilities))
        criterion = Criterion(candidates=build_iter_view(matches), information=information,
                              incompatibilities=incompatibilities)
        # whether there is a candidate, asked without the iterator (and its copy) resolvelib's
        # view would make for it: the same answer
        if not (matches.any() if isinstance(matches, Matches) else matches):
            raise RequirementsConflicted(criterion)
        criteria[key] = criterion

    def _add_root(self, criteria: dict[str, Criterion[Req, Cand]], requirement: Req) -> None:
        # a hard pin's root criterion (the pin its one candidate, the root its information) is
        # the same in every resolution of the search while the pin is a candidate: made once
        # (criteria are never changed, only replaced), asked again only whether that still holds
        provider = self._provider
        known = provider.source.hard_roots.get(requirement)
        if known is not None and requirement.key not in criteria and provider.still_one(*known[0]):
            self._r.adding_requirement(requirement=requirement, parent=None)
            criteria[requirement.key] = known[1]
            return
        self._add_to_criteria(criteria, requirement, None)
        pinned = provider.hard.get(requirement.name)
        if pinned is not None and not requirement.extras and requirement.allows(pinned) \
                and len(criteria[requirement.key].information) == 1:
            provider.source.hard_roots[requirement] = ((requirement.name, pinned), criteria[requirement.key])

    def _get_updated_criteria(self, candidate: Cand) -> dict[str, Criterion[Req, Cand]]:
        # resolvelib copies the state's criteria (hundreds) for the few the candidate's
        # dependencies change, then updates the state's with the whole copy: only the changed
        # ones are returned here, which updates them alike (in place on the hard pins' state)
        before = self.state.criteria
        in_place = self.state is self._hard_state
        criteria = before if in_place else {}
        touched = []
        for requirement in self._p.get_dependencies(candidate=candidate):
            key = requirement.key
            existed = key in before
            self._add_to_criteria(criteria, requirement, parent=candidate, base=None if in_place else before)
            touched.append((key, existed))
        self._touched = touched
        return criteria

    def _pin_hard(self) -> int | None:
        """Pin every hard pin into the top state, in the order the loop would pin them (the
        least unsatisfied identifier by the provider's order, hard pins first; a hard pin's
        extras come up as its dependencies name them); how many, or None when one of them
        conflicts (the state is then spoilt)."""
        order = self._provider.order_of
        state = self._hard_state = self.state
        criteria, mapping = state.criteria, state.mapping
        heap = [place for place in map(order, criteria) if place[0] == 0]
        heapq.heapify(heap)
        count = 0
        while heap:
            name = heapq.heappop(heap)[2]
            if name in mapping:
                continue
            if self._attempt_to_pin_criterion(name):
                return None
            count += 1
            for key, existed in self._touched:
                if key in mapping:
                    if not self._is_current_pin_satisfying(key, criteria[key]):
                        return None
                elif not existed and (place := order(key))[0] == 0:
                    heapq.heappush(heap, place)
        return count

    def _save_state(self) -> None:
        # resolvelib copies every state of the stack (hundreds, each a mapping and criteria of
        # hundreds), in case optimistic backjumping fails and they are rolled back to. A state
        # below the top is never changed (a round changes only the top, a copy pushed for it;
        # _backjump leaves a broken state as it is), so the states themselves are kept
        if self._save_states is None:
            self._save_states = list(self._states)

    def _backjump(self, causes: list[Any]) -> bool:
        # resolvelib's _backjump (1.2), step for step, but for the list of the broken state's
        # incompatibilities: only the criteria that have any, not copied (_patch_criteria
        # makes new lists)
        incompatible_deps = {self._p.identify(c.parent) for c in causes if c.parent is not None}
        incompatible_deps |= {self._p.identify(c.requirement) for c in causes}
        while len(self._states) >= 3:
            del self._states[-1]
            broken_state = self.state
            while True:
                # the broken state's last pin, the state left as it is (resolvelib pops it off
                # the mapping, which is then asked only whether it is empty): a state saved for
                # a rollback is the same object (see _save_state)
                try:
                    broken_state = self._states.pop()
                    name, candidate = next(reversed(broken_state.mapping.items()))
                except (IndexError, StopIteration):
                    raise ResolutionImpossible(causes) from None
                if broken_state is self._hard_state:
                    # resolvelib pops the hard pins one by one here, and every patch leaves the
                    # popped pin no candidate: it fails, but for an optimistic backjump that
                    # saved nothing yet, which saves at the first hard pin the conflict does
                    # not name (see the module's docstring)
                    if self._optimistic_backjumping_ratio and self._save_states is None \
                            and not incompatible_deps.issuperset(broken_state.mapping):
                        self._save_at_hard_pins(broken_state)
                    raise ResolutionImpossible(causes)
                if not self._optimistic_backjumping_ratio and name not in incompatible_deps:
                    break
                if self._optimistic_backjumping_ratio and self._save_states is None \
                        and name not in incompatible_deps:
                    self._save_state()
                current_dependencies = {self._p.identify(d) for d in self._p.get_dependencies(candidate)}
                if not current_dependencies.isdisjoint(incompatible_deps):
                    break
                if len(broken_state.mapping) == 1:  # empty once its last pin is popped
                    break
                if len(self._states) <= 1:
                    raise ResolutionImpossible(causes)
            incompatibilities_from_broken = [(k, v.incompatibilities)
                                             for k, v in broken_state.criteria.items() if v.incompatibilities]
            incompatibilities_from_broken.append((name, [candidate]))
            self._push_new_state()
            if self._patch_criteria(incompatibilities_from_broken):
                return True
        return False

    def _save_at_hard_pins(self, hard_state: State[Req, Cand, str]) -> None:
        # the stack resolvelib would roll back to, as it is once the hard pins popped above its
        # save are pinned again: the hard pins' state, and a copy of it to pin the next into
        again = State(mapping=hard_state.mapping.copy(), criteria=hard_state.criteria.copy(),
                      backtrack_causes=hard_state.backtrack_causes[:])
        self._save_states = [*self._states, hard_state, again]

    def _patch_criteria(self, incompatibilities_from_broken: list[tuple[str, Collection[Cand]]]) -> bool:  # type: ignore[override]
        # resolvelib patches every criterion the broken state had incompatibilities for,
        # asking the provider for its candidates again, and appends the criterion's own
        # incompatibilities to the broken state's: the lists grow with every backjump, the same
        # candidates over and over. Only the candidates a criterion does not exclude yet are
        # new; a criterion with none keeps its candidates (the provider's answer would be the
        # same), so it is not asked again
        todo = []
        criteria = self.state.criteria
        for key, incompatibilities in incompatibilities_from_broken:
            criterion = criteria.get(key)
            if not incompatibilities or criterion is None:
                continue
            have = {id(c) for c in criterion.incompatibilities}
            new = {id(c): c for c in incompatibilities if id(c) not in have}
            if new:
                todo.append((key, list(new.values())))
        return super()._patch_criteria(todo)

    def _remove_information_from_criteria(self, criteria: dict[str, Criterion[Req, Cand]],
                                          parents: Collection[str]) -> None:
        # resolvelib's, but a criterion none of whose information comes from *parents* is
        # kept as it is (resolvelib makes a new one of every criterion, hundreds a time)
        if not parents:
            return
        identify = self._p.identify
        for key, criterion in list(criteria.items()):
            info = criterion.information
            if any(i.parent is not None and identify(i.parent) in parents for i in info):
                criteria[key] = Criterion(
                    criterion.candidates,
                    [i for i in info if i.parent is None or identify(i.parent) not in parents],
                    criterion.incompatibilities)

    def _unsatisfied(self) -> set[str]:
        return {key for key, criterion in self.state.criteria.items()
                if not self._is_current_pin_satisfying(key, criterion)}

    def resolve(self, requirements: Iterable[Req], max_rounds: int) -> State[Req, Cand, str]:
        if self._states:
            raise RuntimeError("already resolved")
        self._r.starting()
        # a plain dict, ordered as resolvelib's OrderedDict (a pin is popped and set again, so
        # the last pinned is last): every round copies it, twenty times faster
        self._states = [State(mapping={}, criteria={}, backtrack_causes=[])]
        for r in requirements:
            try:
                self._add_root(self.state.criteria, r)
            except RequirementsConflicted as e:
                raise ResolutionImpossible(e.criterion.information) from e
        self._push_new_state()
        first = 0
        if self._hard_first:
            pinned = self._pin_hard()
            if pinned is None:
                raise _HardConflict
            first = pinned
            self._push_new_state()
        optimistic_rounds_cutoff: int | None = None
        optimistic_backjumping_start_round: int | None = None
        unsatisfied: set[str] | None = None  # None: ask every criterion
        # per position of the stack below the top: the state there and the unsatisfied names
        # of a top copied from it, before its round. A backjump pushes a copy of such a state
        # (its criteria patched, their information not), so they are that state's again. Not
        # after a rollback (the states are other copies).
        known: list[tuple[State[Req, Cand, str], frozenset[str]] | None] = []
        copied = True  # the top is a copy of the state below it, made before this round
        for round_index in range(first, max_rounds):
            self._r.starting_round(index=round_index)
            ratio = self._optimistic_backjumping_ratio
            if ratio and self._save_states is not None:
                if optimistic_backjumping_start_round is None:
                    optimistic_backjumping_start_round = round_index
                    optimistic_rounds_cutoff = int((max_rounds - round_index) * ratio)
                    if optimistic_rounds_cutoff <= 0:
                        self._rollback_states()
                        unsatisfied, copied = None, False
                        continue
                elif optimistic_rounds_cutoff is not None \
                        and round_index - optimistic_backjumping_start_round >= optimistic_rounds_cutoff:
                    self._rollback_states()
                    unsatisfied, copied = None, False
                    continue
            if copied and len(self._states) >= 2:
                at = len(self._states) - 2
                below = self._states[at]
                del known[at + 1:]  # popped by a backjump
                known += [None] * (at + 1 - len(known))
                entry = known[at]
                same = entry is not None and entry[0] is below
                if unsatisfied is None:
                    unsatisfied = set(entry[1]) if entry is not None and same else self._unsatisfied()
                if not same:
                    known[at] = (below, frozenset(unsatisfied))
            elif unsatisfied is None:
                known.clear()
                unsatisfied = self._unsatisfied()
            if not unsatisfied:
                self._r.ending(state=self.state)
                return self.state
            names = unsatisfied
            if len(names) > 1:
                narrowed = list(self._p.narrow_requirement_selection(
                    identifiers=names,
                    resolutions=self.state.mapping,
                    candidates=IteratorMapping(self.state.criteria, operator.attrgetter("candidates")),
                    information=IteratorMapping(self.state.criteria, operator.attrgetter("information")),
                    backtrack_causes=self.state.backtrack_causes,
                ))
            else:
                narrowed = list(names)
            if not narrowed:
                raise RuntimeError("narrow_requirement_selection returned 0 names")
            name = min(narrowed, key=self._get_preference) if len(narrowed) > 1 else narrowed[0]
            failure_criterion = self._attempt_to_pin_criterion(name)
            if failure_criterion:
                causes = self._extract_causes(failure_criterion)
                self._r.resolving_conflicts(causes=causes)
                unsatisfied = None
                try:
                    success = self._backjump(causes)
                except ResolutionImpossible:
                    if self._optimistic_backjumping_ratio and self._save_states:
                        failed_optimistic_backjumping = True
                    else:
                        raise
                else:
                    failed_optimistic_backjumping = bool(
                        not success and self._optimistic_backjumping_ratio and self._save_states)
                if failed_optimistic_backjumping and self._save_states:
                    self._rollback_states()
                    copied = False
                else:
                    copied = True
                    self.state.backtrack_causes[:] = causes
                    if not success:
                        raise ResolutionImpossible(self.state.backtrack_causes)
            else:
                # only the pinned criterion and its candidate's dependencies' changed: of those,
                # the ones satisfied before and not now lose the information they gave
                criteria = self.state.criteria
                newly: set[str] = set()
                unsatisfied.discard(name)
                if not self._is_current_pin_satisfying(name, criteria[name]):
                    unsatisfied.add(name)
                for key, existed in self._touched:
                    if self._is_current_pin_satisfying(key, criteria[key]):
                        unsatisfied.discard(key)
                    elif key not in unsatisfied:
                        if existed and key != name:
                            newly.add(key)
                        unsatisfied.add(key)
                if newly:
                    self._remove_information_from_criteria(criteria, newly)
                    unsatisfied = None
                self._push_new_state()
                copied = True
            self._r.ending_round(index=round_index, state=self.state)
        raise ResolutionTooDeep(max_rounds)


class _HardConflict(Exception):
    """The hard pins conflict among themselves (:meth:`FastResolution._pin_hard`)."""


class FastResolver(Resolver[Req, Cand, str]):
    """resolvelib's :class:`~resolvelib.Resolver` with :class:`FastResolution`: the same
    resolution, its bookkeeping in proportion to each round's change."""

    def resolve(self, requirements: Iterable[Req], max_rounds: int = 100,  # type: ignore[override]
                *, causes: bool = True) -> Any:
        """resolvelib's resolution of *requirements*. When the hard pins conflict among
        themselves, there is none: the ResolutionImpossible carries resolvelib's causes (the
        resolution is run again its way for them) when *causes*, else none."""
        roots = list(requirements)
        try:
            state = FastResolution(self.provider, self.reporter).resolve(roots, max_rounds=max_rounds)
        except _HardConflict:
            if not causes:
                raise ResolutionImpossible([]) from None
            state = FastResolution(self.provider, self.reporter, hard_first=False).resolve(
                roots, max_rounds=max_rounds)
        return _build_result(state)
