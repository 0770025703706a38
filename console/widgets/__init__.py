"""Widgets the console's screens are built from: the lock log, the status bar, in-place tables."""
