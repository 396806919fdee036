"""The domain vocabulary of DESIGN.md as enums (pure)."""

from __future__ import annotations

from enum import StrEnum


class CallOutcome(StrEnum):
    """What became of one inbound call; exactly one per call, decided when the caller hangs up."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    SHORT_ABANDON = "short_abandon"
    CALLBACK_REQUESTED = "callback_requested"
    VOICEMAIL = "voicemail"
    UNANSWERED_TIMEOUT = "unanswered_timeout"
    UNANSWERED_NO_AGENTS = "unanswered_no_agents"
    UNANSWERED_FULL = "unanswered_full"
    AFTER_HOURS = "after_hours"
    IVR_HANGUP = "ivr_hangup"
    FAILED = "failed"

    @property
    def is_missed(self) -> bool:
        """Every outcome but ``answered`` is a missed call.

        ``callback_requested`` stays missed until its callback connects (the call is then closed).
        """
        return self is not CallOutcome.ANSWERED


class EntryPoint(StrEnum):
    """Where a call entered our hands."""

    ARI = "ari"
    AGI = "agi"


class AgentState(StrEnum):
    """An agent's state; changed only by events we saw or by an authorised request."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class CallbackState(StrEnum):
    """The life of a callback record."""

    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    DIALING = "dialing"
    CONNECTED = "connected"
    COMPLETED = "completed"
    RETRY_WAIT = "retry_wait"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED_INBOUND = "completed_inbound"

    @property
    def is_open(self) -> bool:
        """Open callbacks still owe the caller a call; at most one per (queue, number)."""
        return self in _OPEN_CALLBACK_STATES


_OPEN_CALLBACK_STATES = frozenset(
    {
        CallbackState.REQUESTED,
        CallbackState.SCHEDULED,
        CallbackState.DIALING,
        CallbackState.CONNECTED,
        CallbackState.RETRY_WAIT,
    }
)


class AttemptResult(StrEnum):
    """How one callback attempt ended."""

    CONNECTED = "connected"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    MACHINE = "machine"
    ERROR = "error"


class VoicemailStatus(StrEnum):
    """Where a voicemail is in its processing; ``silent`` and ``failed`` stay missed calls to follow up."""

    RECORDED = "recorded"  # stored, waiting for (or re-queued for) transcription
    TRANSCRIBED = "transcribed"
    SILENT = "silent"  # no speech in it: no transcript
    FAILED = "failed"  # not decodable, or transcription failed every attempt


class Role(StrEnum):
    """API roles; they nest: admin ⊇ supervisor ⊇ agent."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def includes(self, required: Role) -> bool:
        """True when a token of this role may do what ``required`` may."""
        return self.rank >= required.rank


_ROLE_RANK = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


class CallbackKind(StrEnum):
    """How a callback is served.

    ``keep_place``: the caller keeps their original enqueue time and is called back when that place
    reaches the head of the queue. ``scheduled``: the caller chose a later slot, which is booked.
    """

    KEEP_PLACE = "keep_place"
    SCHEDULED = "scheduled"


class ActorKind(StrEnum):
    """Who or what caused a change of a callback."""

    CUSTOMER = "customer"  # the caller: in the IVR, by SMS, on the web
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    SYSTEM = "system"  # our own policies: due policy, sweep, dispatcher, expiry
