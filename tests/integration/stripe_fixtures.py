"""Pytest fixtures for the Stripe adapter tests: a fake Stripe server and gateways pointed at it.

Bind the fixtures you use in the test module (``fake_stripe = stripe_fixtures.fake_stripe``);
nothing here is registered globally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.stripe import StripePaymentGateway

try:
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.fake_stripe import FakeStripe

API_KEY = "sk_test_fake_integration_key"
WEBHOOK_SECRET = "whsec_test_integration_secret"
BASE_URL = "http://booking.test"

GatewayFactory = Callable[..., StripePaymentGateway]


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A running fake Stripe that accepts only ``API_KEY``; stopped after the test."""
    with FakeStripe(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def make_stripe_gateway(fake_stripe: FakeStripe) -> Iterator[GatewayFactory]:
    """Build StripePaymentGateways on the fake; keyword arguments override the test defaults.

    Defaults keep tests fast: no SDK retries (they sleep 0.5 s and more) and 2 s timeouts.
    """
    made: list[StripePaymentGateway] = []

    def make(**overrides: Any) -> StripePaymentGateway:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "webhook_secret": WEBHOOK_SECRET,
            "base_url": BASE_URL,
            "api_base": fake_stripe.url,
            "timeout": (2.0, 2.0),
            "max_network_retries": 0,
            **overrides,
        }
        gateway = StripePaymentGateway(**options)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()


@pytest.fixture
def stripe_gateway(make_stripe_gateway: GatewayFactory) -> StripePaymentGateway:
    """A gateway on the fake with the test defaults."""
    return make_stripe_gateway()
