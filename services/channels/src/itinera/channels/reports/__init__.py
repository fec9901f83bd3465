"""Delivery reports: what a provider says became of a message after it accepted it (an
SMS's ``delivered``, ``undelivered`` or ``failed``, through Twilio's ``StatusCallback``)."""
