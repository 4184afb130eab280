"""The domain errors booking services raise; ``config.api`` maps each to one HTTP answer."""


class BookingError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SlotTaken(BookingError):
    """The time is no longer free (taken by someone else first, or never was)."""

    status = 409
    code = "slot_taken"


class PatientBusy(BookingError):
    """The patient already holds a visit at an overlapping time."""

    status = 409
    code = "patient_busy"


class PolicyViolation(BookingError):
    """The request is well-formed but the clinic's rules refuse it (notice, horizon, cutoff)."""

    status = 422
    code = "policy_violation"


class InvalidTransition(BookingError):
    """The appointment's status does not allow this change."""

    status = 409
    code = "invalid_transition"


class NotEligible(BookingError):
    """No approval in force allows this patient this kind of visit (declined, expired, used up,
    or never decided)."""

    status = 422
    code = "not_eligible"
