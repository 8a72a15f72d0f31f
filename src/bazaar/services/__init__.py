"""The services, one package each (README, Layout).

Every service process starts here. httpx and structlog import rich (and pygments) when it
is installed, for a command line and pretty tracebacks no service uses; the runner needs
rich, so it is installed. Loaded first without it, they leave about 5 MiB out of every
service process.
"""

from bazaar.platform.lean_imports import hidden

with hidden("rich"), hidden("pygments"):
    import httpx  # noqa: F401
    import structlog  # noqa: F401
