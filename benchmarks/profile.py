"""x."""

from ingest import machine_line

print(machine_line())
