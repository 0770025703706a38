"""Widgets the console's screens are built from: the lock log and tables updated in place."""
