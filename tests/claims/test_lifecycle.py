"""The claim lifecycle: the transition table and its one guard."""

from __future__ import annotations

import itertools

import pytest

from claims.lifecycle import (
    DESCRIPTIONS,
    TERMINAL_STATES,
    TRANSITIONS,
    Actor,
    ClaimState,
    IllegalTransition,
    allowed_targets,
    transition,
)

S, C, A = Actor.SYSTEM, Actor.CUSTOMER, Actor.ADJUSTER
ALL_PAIRS = list(itertools.product(ClaimState, ClaimState))

# The table as specified, written out independently so a change to TRANSITIONS has to change this too.
EXPECTED = {
    ("submitted", "assessing"): {S},
    ("assessing", "offered"): {S},
    ("assessing", "in_review"): {S},
    ("offered", "accepted"): {C},
    ("offered", "declined"): {C},
    ("offered", "expired"): {S},
    ("declined", "in_review"): {S},
    ("expired", "in_review"): {C, S},
    ("in_review", "approved"): {A},
    ("in_review", "denied"): {A},
    ("in_review", "needs_photos"): {A},
    ("in_review", "assessing"): {S},
    ("needs_photos", "assessing"): {C, S},
    ("accepted", "payout_instructed"): {S},
    ("approved", "payout_instructed"): {S},
}


def test_table_is_exactly_the_specified_one() -> None:
    assert {(str(a), str(b)): set(actors) for (a, b), actors in TRANSITIONS.items()} == EXPECTED


def test_table_only_mentions_known_states_and_actors() -> None:
    for (frm, to), actors in TRANSITIONS.items():
        assert isinstance(frm, ClaimState) and isinstance(to, ClaimState)
        assert frm != to
        assert actors and all(isinstance(a, Actor) for a in actors)
        assert isinstance(actors, frozenset)


@pytest.mark.parametrize(("move", "actor"), [(m, a) for m in TRANSITIONS for a in Actor])
def test_each_move_is_allowed_exactly_for_its_actors(
    move: tuple[ClaimState, ClaimState], actor: Actor
) -> None:
    frm, to = move
    if actor in TRANSITIONS[move]:
        assert transition(frm, to, actor) is to
    else:
        with pytest.raises(IllegalTransition) as exc:
            transition(frm, to, actor)
        assert (exc.value.current, exc.value.target, exc.value.actor) == (frm, to, actor)
        assert f"cannot go from {frm} to {to} as {actor}" in str(exc.value)


@pytest.mark.parametrize(("frm", "to"), [p for p in ALL_PAIRS if p not in TRANSITIONS])
def test_every_pair_not_in_the_table_is_refused_for_everyone(frm: ClaimState, to: ClaimState) -> None:
    for actor in Actor:
        with pytest.raises(IllegalTransition, match=f"^cannot go from {frm} to {to}$"):
            transition(frm, to, actor)


def test_message_example() -> None:
    with pytest.raises(IllegalTransition) as exc:
        transition(ClaimState.OFFERED, ClaimState.APPROVED, Actor.ADJUSTER)
    assert str(exc.value) == "cannot go from offered to approved"
    assert not isinstance(exc.value, ValueError)  # a conflict (409), not bad input (422)


def test_terminal_states_have_no_exits() -> None:
    assert set(TERMINAL_STATES) == {ClaimState.DENIED, ClaimState.PAYOUT_INSTRUCTED}
    for state in TERMINAL_STATES:
        assert not any(frm == state for frm, _ in TRANSITIONS)
        for actor in Actor:
            assert allowed_targets(state, actor) == frozenset()


def test_every_non_terminal_state_has_an_exit_and_every_state_is_reachable() -> None:
    for state in set(ClaimState) - TERMINAL_STATES:
        assert any(frm == state for frm, _ in TRANSITIONS), state
    reachable = {ClaimState.SUBMITTED}
    frontier = [ClaimState.SUBMITTED]
    while frontier:
        here = frontier.pop()
        for frm, to in TRANSITIONS:
            if frm == here and to not in reachable:
                reachable.add(to)
                frontier.append(to)
    assert reachable == set(ClaimState)


def test_the_machine_never_denies_or_approves() -> None:
    for (_, to), actors in TRANSITIONS.items():
        if to in (ClaimState.DENIED, ClaimState.APPROVED, ClaimState.NEEDS_PHOTOS):
            assert actors == {Actor.ADJUSTER}


def test_allowed_targets() -> None:
    assert allowed_targets(ClaimState.OFFERED, Actor.CUSTOMER) == {ClaimState.ACCEPTED, ClaimState.DECLINED}
    assert allowed_targets(ClaimState.OFFERED, Actor.SYSTEM) == {ClaimState.EXPIRED}
    assert allowed_targets(ClaimState.OFFERED, Actor.ADJUSTER) == frozenset()
    assert allowed_targets(ClaimState.IN_REVIEW, Actor.ADJUSTER) == {
        ClaimState.APPROVED,
        ClaimState.DENIED,
        ClaimState.NEEDS_PHOTOS,
    }
    for frm, actor in itertools.product(ClaimState, Actor):
        assert allowed_targets(frm, actor) == {
            to for (f, to), who in TRANSITIONS.items() if f == frm and actor in who
        }


def test_strings_are_accepted_and_unknown_names_refused() -> None:
    assert transition("offered", "accepted", "customer") is ClaimState.ACCEPTED  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        transition("offered", "paid", "customer")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        transition("offered", "accepted", "robot")  # type: ignore[arg-type]


def test_every_state_has_a_customer_description() -> None:
    assert set(DESCRIPTIONS) == set(ClaimState)
    for text in DESCRIPTIONS.values():
        assert text and text[0].isupper() and text.endswith(".")
    assert DESCRIPTIONS[ClaimState.IN_REVIEW] == "A claims adjuster is reviewing your photos."
