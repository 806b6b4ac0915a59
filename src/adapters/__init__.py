"""Adapters: implementations of booking_core's ports (memory, postgres, stripe, calcom,
slot_cache, schedule, email); no adapter package imports another (see the import contracts)."""
