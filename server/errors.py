"""Errors an operator can cause, each with a message a person can act on."""


class EngageError(Exception):
    """Base of every error the host reports to a person rather than as a traceback."""


class ConfigError(EngageError):
    """A setting in a file, the environment or a flag is unknown or has a bad value."""


class SiteKeyError(EngageError):
    """The site key is missing or not 32 bytes of Base64 or hex."""


class CertificateError(EngageError):
    """A certificate, key or certificate set cannot be read, created or used."""
