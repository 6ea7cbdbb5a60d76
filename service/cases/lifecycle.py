"""The case lifecycle, as data: which status may follow which.

referral -> intake -> assessment -> planning -> active -> monitoring -> transition -> closed.
Monitoring may send the case back to re-assessment or re-planning; any open case may close,
with a reason; a closed case is final. A case opened in error, with nothing done in it yet,
is withdrawn instead (entered_in_error, also final).
"""

from __future__ import annotations

from mappings.vocabulary import CaseStatus as S

ALLOWED_TRANSITIONS: dict[S, frozenset[S]] = {
    S.referral: frozenset({S.intake, S.closed}),
    S.intake: frozenset({S.assessment, S.closed}),
    S.assessment: frozenset({S.planning, S.closed}),
    S.planning: frozenset({S.active, S.assessment, S.closed}),
    S.active: frozenset({S.monitoring, S.transition, S.assessment, S.planning, S.closed}),
    S.monitoring: frozenset({S.active, S.transition, S.assessment, S.planning, S.closed}),
    S.transition: frozenset({S.monitoring, S.active, S.closed}),
    S.closed: frozenset(),
    S.entered_in_error: frozenset(),
}

# A case that ended: closed, or withdrawn as entered in error (service/cases/withdrawal.py). Its
# records are final and it is no one's open case.
ENDED: frozenset[S] = frozenset({S.closed, S.entered_in_error})

# The plan is being carried out: goals can be achieved and services delivered.
IN_SERVICE: frozenset[S] = frozenset({S.active, S.monitoring, S.transition})


def may_move(current: S, target: S) -> bool:
    return target in ALLOWED_TRANSITIONS[current]
