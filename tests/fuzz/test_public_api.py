"""Schemathesis against the real gateway, on the real platform: requests generated from
the gateway's OpenAPI document (its examples; boundary values and every way to break each
constraint; random valid and invalid data; then linked sequences such as list products ->
add one to the cart -> check out -> read the order), each answer checked by every
schemathesis check: no 5xx, a documented status, a documented content type (problem+json
for errors), a body that conforms to the documented schema, refused invalid input,
enforced authentication.

Schemathesis's engine (what `st run` drives) runs it, so every phase runs and the totals
are its own. The run is deterministic (a fixed seed, deterministic generation, no example
database) and sized to stay well under a minute and a half.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from bazaar.runner.platform import Platform

if TYPE_CHECKING:
    from tests.fuzz.conftest import Credentials

pytestmark = pytest.mark.system

SEED = 20_260_601
MIN_REQUESTS = 1_000
# Examples per operation in the fuzzing phase (the coverage phase adds its own: boundary
# values, each way to break each constraint) and scenarios of the stateful phase.
MAX_EXAMPLES = 40
STATEFUL_STEPS = 6
# What a schema-valid request may still get from these operations: an empty cart at
# checkout, a cart line past 99 units are business rules no schema can express.
STATEFUL_REFUSALS = ["2xx", "401", "403", "404", "409", "422", "429"]


def schemathesis_config(credentials: Credentials) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "deterministic": True,
                "max-examples": MAX_EXAMPLES,
                "database": "none",
            },
            "checks": {"enabled": True},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "request-timeout": 15.0,
            "auth": {"auto-signup": False},
            "operations": [
                {"include-tag": "admin", "headers": credentials.admin},
                {"exclude-tag": "admin", "headers": credentials.customer},
                {
                    "include-path-regex": "^/api/(checkout|cart/items)",
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": STATEFUL_REFUSALS}
                    },
                },
            ],
        }
    )


@dataclass
class Outcome:
    """What the engine did and found."""

    requests: int = 0
    checks: int = 0
    scenarios: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, scenario: events.ScenarioFinished) -> None:
        recorder = scenario.recorder
        self.scenarios += 1
        for interaction in recorder.interactions.values():
            self.requests += 1
            if interaction.response is not None:
                self.statuses[interaction.response.status_code] += 1
        for nodes in recorder.checks.values():
            self.checks += len(nodes)
            for node in nodes:
                if node.status == Status.FAILURE and node.failure_info is not None:
                    failure = node.failure_info.failure
                    key = (recorder.label, failure.title)
                    self.failures.setdefault(
                        key,
                        f"{recorder.label}: {failure.title}\n{failure.message}\n"
                        f"    {node.failure_info.code_sample}",
                    )

    def report(self) -> str:
        lines = [f"{len(self.failures)} distinct failures, {len(self.errors)} errors"]
        lines += [f"--- {text}" for text in self.failures.values()]
        lines += [f"--- error: {text}" for text in self.errors]
        return "\n".join(lines)

    def totals(self) -> str:
        return (
            f"schemathesis: {self.requests} requests in {self.scenarios} scenarios, "
            f"{self.checks} checks, {len(self.failures)} failures; "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


def run_engine(schema: schemathesis.BaseSchema) -> Outcome:
    outcome = Outcome()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            outcome.add(event)
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return outcome


@pytest.mark.timeout(300)  # ~40 s on an idle machine; a loaded one may take twice that
def test_every_answer_of_the_public_api_is_as_documented(
    fuzz_platform: Platform, credentials: Credentials
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{fuzz_platform.public_url}/openapi.json", config=schemathesis_config(credentials)
    )

    outcome = run_engine(schema)

    print(outcome.totals())
    assert not outcome.failures and not outcome.errors, outcome.report()
    assert outcome.requests >= MIN_REQUESTS, outcome.totals()
    assert not [status for status in outcome.statuses if status >= 500], outcome.totals()
