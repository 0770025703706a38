"""Device records in ``Engage_Data/`` (DESIGN.md "Device records"): the record files, the
call-in answers, the allowlist and serial format, the event logs and their counts, the listing
index and change notices; :class:`server.devices.store.Devices` composes them for the host."""
