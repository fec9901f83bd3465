"""Frequency capping rules (``/v1/capping/rules``) and quiet hours (``/v1/quiet-hours``)."""
