"""Diagnosis: what kind of mistake the wrong partials show (``classify``) and which backward
step lets it in (``nodes``). Decided from the numbers alone. Internal."""
