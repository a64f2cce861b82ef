"""`make bench`: what the detector costs, each figure against its baseline (run.py). Not part of the command."""
