"""What training_app tells other apps, without knowing them (they connect in their AppConfig.ready)."""

from django.dispatch import Signal

# Sent by the worker once a run it executed has ended (succeeded, failed or cancelled), with run_id and status.
# Sent robustly: a listener that fails is logged and changes nothing about the run.
run_finished = Signal()
