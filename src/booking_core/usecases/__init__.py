"""Use cases: what clients, admins, webhooks and the worker can do, each a function.

Each takes a command (or plain ids) and the ports it needs by keyword. A ``uow`` is a fresh
UnitOfWork (one per request or job); every ``with uow:`` is one transaction. No outbound call
(payment provider, calendar) is made while a transaction is open.

One module per capability (catalogue, availability, booking, payments, cancellation and
rescheduling, housekeeping, admin and admin_ops); all are re-exported here, so
``from booking_core import usecases`` is the one import callers need.
"""

from booking_core.jobs import JobKind
from booking_core.usecases.admin import (
    BookingPage,
    NewPractitioner,
    TimeOffNotFound,
    add_service,
    add_time_off,
    create_practitioner,
    get_admin_booking,
    get_admin_practitioner,
    link_calendar,
    list_admin_bookings,
    list_admin_practitioners,
    mark_no_show,
    remove_time_off,
    set_working_hours,
    update_practitioner,
    update_service,
)
from booking_core.usecases.admin_ops import (
    ApiTokenNotFound,
    AuditPage,
    IssuedToken,
    JobNotFound,
    actor_for_bearer,
    change_role,
    issue_api_token,
    list_api_tokens,
    list_audit,
    list_jobs,
    list_users,
    retry_job,
    revoke_api_token,
)
from booking_core.usecases.approval import (
    Approved,
    approve_booking,
    decline_booking,
    expire_unapproved,
)
from booking_core.usecases.assignment import (
    ServiceAvailability,
    SharedSlot,
    get_service_availability,
    rank_candidates,
    request_booking_any,
)
from booking_core.usecases.availability import Availability, AvailabilityQuery, get_availability
from booking_core.usecases.booking import (
    IDEMPOTENCY_LEASE,
    BookingRequested,
    IdempotencyClaim,
    RequestBooking,
    authorize_booking,
    claim_idempotency_key,
    find_booking_by_checkout,
    get_booking,
    list_bookings,
    release_idempotency_key,
    request_booking,
    request_booking_once,
)
from booking_core.usecases.cancellation import (
    CancelBooking,
    CancellationQuote,
    Cancelled,
    RescheduleBooking,
    apply_calendar_move,
    cancel_booking,
    handle_calendar_cancellation,
    handle_calendar_reschedule,
    quote_cancellation,
    reschedule_booking,
)
from booking_core.usecases.catalogue import find_practitioner, get_practitioner, list_practitioners
from booking_core.usecases.housekeeping import (
    Reconciled,
    complete_finished_bookings,
    expire_stale_holds,
    reconcile_payments,
)
from booking_core.usecases.operations import OperationalCounts, operational_counts
from booking_core.usecases.payments import PaymentOutcome, handle_payment_event, issue_refund
from booking_core.usecases.recovery import request_manage_links, send_manage_links

# The job kinds under their former names, for callers written before JobKind.
JOB_EMAIL = JobKind.EMAIL
JOB_CALENDAR_CREATE = JobKind.CALENDAR_CREATE
JOB_CALENDAR_CANCEL = JobKind.CALENDAR_CANCEL
JOB_CALENDAR_RESCHEDULE = JobKind.CALENDAR_RESCHEDULE
JOB_REFUND = JobKind.REFUND
JOB_EXPIRE_CHECKOUT = JobKind.EXPIRE_CHECKOUT

__all__ = [
    "IDEMPOTENCY_LEASE",
    "JOB_CALENDAR_CANCEL",
    "JOB_CALENDAR_CREATE",
    "JOB_CALENDAR_RESCHEDULE",
    "JOB_EMAIL",
    "JOB_EXPIRE_CHECKOUT",
    "JOB_REFUND",
    "ApiTokenNotFound",
    "Approved",
    "AuditPage",
    "Availability",
    "AvailabilityQuery",
    "BookingPage",
    "BookingRequested",
    "CancelBooking",
    "CancellationQuote",
    "Cancelled",
    "IdempotencyClaim",
    "IssuedToken",
    "JobNotFound",
    "NewPractitioner",
    "OperationalCounts",
    "PaymentOutcome",
    "Reconciled",
    "RequestBooking",
    "RescheduleBooking",
    "ServiceAvailability",
    "SharedSlot",
    "TimeOffNotFound",
    "actor_for_bearer",
    "add_service",
    "add_time_off",
    "apply_calendar_move",
    "approve_booking",
    "authorize_booking",
    "cancel_booking",
    "change_role",
    "claim_idempotency_key",
    "complete_finished_bookings",
    "create_practitioner",
    "decline_booking",
    "expire_stale_holds",
    "expire_unapproved",
    "find_booking_by_checkout",
    "find_practitioner",
    "get_admin_booking",
    "get_admin_practitioner",
    "get_availability",
    "get_booking",
    "get_practitioner",
    "get_service_availability",
    "handle_calendar_cancellation",
    "handle_calendar_reschedule",
    "handle_payment_event",
    "issue_api_token",
    "issue_refund",
    "link_calendar",
    "list_admin_bookings",
    "list_admin_practitioners",
    "list_api_tokens",
    "list_audit",
    "list_bookings",
    "list_jobs",
    "list_practitioners",
    "list_users",
    "mark_no_show",
    "operational_counts",
    "quote_cancellation",
    "rank_candidates",
    "reconcile_payments",
    "release_idempotency_key",
    "remove_time_off",
    "request_booking",
    "request_booking_any",
    "request_booking_once",
    "request_manage_links",
    "reschedule_booking",
    "retry_job",
    "revoke_api_token",
    "send_manage_links",
    "set_working_hours",
    "update_practitioner",
    "update_service",
]
