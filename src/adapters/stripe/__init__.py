"""Stripe adapter: the PaymentGateway port on the stripe SDK (Checkout, refunds, webhooks)."""

from adapters.stripe.gateway import WEBHOOK_TOLERANCE_SECONDS, StripePaymentGateway

__all__ = ["WEBHOOK_TOLERANCE_SECONDS", "StripePaymentGateway"]
