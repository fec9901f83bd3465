"""The message pipeline: message requests in, checks, rendering, delivery, feedback out."""
