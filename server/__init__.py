"""The ENGAGE host: listeners, lock routes, certificate store, device records, request log.

This package never imports textual: the console drives it, it never knows the console exists.
"""
