"""The suppression list, in the shape of AJO's Suppression API (``/ajo/config/suppression``)."""
