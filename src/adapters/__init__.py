"""Adapters: implementations of booking_core's ports (memory, postgres, stripe, calcom, email)."""
