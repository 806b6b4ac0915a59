"""Notifications in the core and their rendering: who is told, stale mails, the signed manage
link, money per currency, the client's zone, logged (masked) mails without SMTP."""

from __future__ import annotations

import logging
from datetime import timedelta

import attrs
import pytest

from adapters.email import LoggingNotifier, MailRenderer, format_money
from booking_core import usecases
from booking_core.errors import BookingNotFound
from booking_core.model import Client, Money
from booking_core.notifications import (
    NotificationKind,
    RecipientRole,
    link_token_matches,
    manage_link_token,
    notification_for,
)
from booking_core.usecases import JOB_EMAIL

from .support import CLIENT, MONDAY, App, at

START = at(MONDAY + timedelta(days=3), "10:00")


@pytest.mark.parametrize(
    ("money", "locale", "shown"),
    [
        (Money(9000, "gbp"), "en_GB", "£90.00"),
        (Money(12000, "jpy"), "en_GB", "JP¥12,000"),
        (Money(12000, "jpy"), "ja_JP", "￥12,000"),
        (Money(1500, "kwd"), "en_GB", "KWD1.500"),
        (Money(123456, "eur"), "fr_FR", "1\u202f234,56\xa0€"),
        (Money(5000, "krw"), "en_US", "₩5,000"),
    ],
)
def test_money_is_formatted_for_its_currency_and_locale(
    money: Money, locale: str, shown: str
) -> None:
    assert format_money(money, locale) == shown


def test_the_link_token_is_signed_for_one_booking_and_one_key(app: App) -> None:
    booking = app.confirmed(START)
    secret = app.rules.link_secret
    token = manage_link_token(secret, booking)
    assert token.startswith("m1.")
    assert token == manage_link_token(secret, booking)  # the same in every mail
    assert link_token_matches(secret, booking, token)
    assert not link_token_matches(b"another key", booking, token)
    other = attrs.evolve(booking, id=(booking.id or 0) + 1)
    assert not link_token_matches(secret, other, token)
    rotated = attrs.evolve(booking, manage_token_hash="0" * 64)
    assert not link_token_matches(secret, rotated, token)  # a new manage token voids old links
    assert manage_link_token(b"", booking) == ""  # no key: no link, never an unsigned one
    assert not link_token_matches(b"", booking, "")


def test_the_api_accepts_the_link_token_for_its_booking_only(app: App) -> None:
    first = app.confirmed(START)
    second = app.confirmed(START + timedelta(hours=4))
    token = manage_link_token(app.rules.link_secret, first)
    found = usecases.authorize_booking(first.id or 0, token, uow=app.uow(), rules=app.rules)
    assert found.id == first.id
    with pytest.raises(BookingNotFound):
        usecases.authorize_booking(second.id or 0, token, uow=app.uow(), rules=app.rules)
    with pytest.raises(BookingNotFound):
        usecases.authorize_booking(first.id or 0, token, uow=app.uow())  # no rules: no links


def test_each_side_gets_a_job_of_its_own(app: App) -> None:
    app.confirmed(START)
    mails = [j.payload for j in app.jobs() if j.kind == JOB_EMAIL]
    assert sorted((m["template"], m["to"]) for m in mails) == [
        ("confirmed", "client"),
        ("confirmed", "practitioner"),
        ("reminder", "client"),
        ("reminder", "practitioner"),
    ]


def test_the_client_is_told_times_in_their_own_zone(app: App) -> None:
    booking = app.confirmed(START)
    booking = attrs.evolve(booking, client=attrs.evolve(CLIENT, timezone="Asia/Kolkata"))
    note = notification_for(
        NotificationKind.CONFIRMED,
        booking,
        app.practitioner,
        (RecipientRole.CLIENT, RecipientRole.PRACTITIONER),
        link_secret=app.rules.link_secret,
    )
    client, practitioner = MailRenderer(base_url="https://book.example").render(
        note, stamp=app.clock.now()
    )
    assert "Thursday 10 January 2030, 15:30 (Asia/Kolkata)" in client.text
    assert "Thursday 10 January 2030, 10:00 (Europe/London)" in practitioner.text
    assert f"https://book.example/manage/{booking.id}?token=m1." in client.text
    assert "/manage/" not in practitioner.text + practitioner.html


def test_html_mails_escape_what_clients_typed(app: App) -> None:
    booking = app.confirmed(START)
    booking = attrs.evolve(booking, client=Client(name="<b>Eve</b>", email="eve@example.com"))
    note = notification_for(
        NotificationKind.CONFIRMED,
        booking,
        app.practitioner,
        (RecipientRole.PRACTITIONER,),
        link_secret=app.rules.link_secret,
    )
    [mail] = MailRenderer(base_url="https://book.example").render(note, stamp=app.clock.now())
    assert "&lt;b&gt;Eve&lt;/b&gt;" in mail.html
    assert "<b>Eve</b>" not in mail.html


def test_a_cancelled_booking_gets_no_reminder_and_a_moved_one_gets_its_new_one(app: App) -> None:
    kept = app.confirmed(START)
    gone = app.confirmed(START + timedelta(hours=4))
    app.cancel(gone.id)
    app.reschedule(kept.id, START + timedelta(days=1))
    app.run_jobs()
    app.notifier.sent.clear()
    app.clock.set(START - timedelta(hours=1))  # the first reminders are all due
    app.run_jobs()
    assert app.notifier.told("client") == []
    app.clock.set(START + timedelta(days=1) - timedelta(hours=23))
    app.run_jobs()
    assert app.notifier.told("client") == app.notifier.told("practitioner") == ["reminder"]
    assert app.notifier.sent[0].booking.start == START + timedelta(days=1)


def test_recovery_queues_one_job_whatever_the_address(app: App) -> None:
    app.confirmed(START)
    before = len(app.jobs())
    assert usecases.request_manage_links(CLIENT.email.upper(), uow=app.uow(), clock=app.clock)
    assert usecases.request_manage_links("nobody@example.com", uow=app.uow(), clock=app.clock)
    assert not usecases.request_manage_links(CLIENT.email, uow=app.uow(), clock=app.clock)
    assert len(app.jobs()) == before + 2  # one per address an hour, looked up by the worker
    app.run_jobs()
    links = [n for n in app.notifier.sent if n.kind is NotificationKind.MANAGE_LINK]
    assert [n.recipients[0].email for n in links] == [CLIENT.email]
    app.clock.advance(timedelta(hours=1))
    assert usecases.request_manage_links(CLIENT.email, uow=app.uow(), clock=app.clock)


def test_without_smtp_mails_are_logged_with_masked_addresses(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    booking = app.confirmed(START)
    note = notification_for(
        NotificationKind.CONFIRMED,
        booking,
        app.practitioner,
        (RecipientRole.CLIENT,),
        link_secret=app.rules.link_secret,
    )
    caplog.set_level(logging.INFO, logger="adapters.email")
    notifier = LoggingNotifier()
    notifier.notify(note)
    assert [m.subject for m in notifier.sent] == ["Your appointment is confirmed"]
    assert "a***@example.com" in caplog.text
    assert CLIENT.email not in caplog.text
    assert note.manage_token not in caplog.text


def test_a_practitioner_without_an_address_is_skipped_not_retried(app: App) -> None:
    uow = app.uow()
    with uow:
        practitioner = uow.practitioners.get(app.practitioner.id or 0)
        practitioner.email = ""
        uow.practitioners.save(practitioner)
        uow.commit()
    app.confirmed(START)
    counts = app.run_jobs()
    assert counts["retried"] == counts["parked"] == 0
    assert app.notifier.told("client") == ["confirmed"]
    assert app.notifier.told("practitioner") == []
