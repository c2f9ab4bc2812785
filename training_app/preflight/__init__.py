"""Preflight: what a run would train on, checked before anything is saved or queued.

report.py tokenizes the pairs exactly as training will (training_app.ml.data with the base model's tokenizer,
loaded without torch), checks.py holds the warnings, estimate.py the expected training time.
"""
