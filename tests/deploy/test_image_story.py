"""The SPEC's story played against Bazaar run from its image: every service in its own
container (read-only root, uid 10001, capabilities dropped), on PostgreSQL and a 3-node
NATS JetStream cluster, in production mode. The CI container job
(deploy/ci/container-job.sh) builds the image and runs this file with BAZAAR_TEST_IMAGE
naming it; without that variable these tests are skipped (`make test` does not build
images; the job, run beside it, fails CI when they fail)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bazaar.runner.smtp import messages_to
from bazaar.testing import (
    POSTGRES_URL_VARIABLE,
    REDIS_URL_VARIABLE,
    require_external,
    require_program,
)
from bazaar.testing.api import ok, poll

from .containers import Deployment, podman

IMAGE_VARIABLE = "BAZAAR_TEST_IMAGE"
THIRD_PARTY = ("/usr/", "/etc/ssl/", "/opt/bazaar/lib/python3.11/site-packages/")
OURS = "/site-packages/bazaar/"


@pytest.fixture(scope="module")
def image() -> str:
    image = os.environ.get(IMAGE_VARIABLE, "")
    if not image:
        pytest.skip(f"{IMAGE_VARIABLE} not set: deploy/ci/container-job.sh builds and runs it")
    require_program("/usr/bin/podman", "podman", "podman")
    return image


@pytest.fixture(scope="module")
def shop(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    postgres = require_external(POSTGRES_URL_VARIABLE, "PostgreSQL")
    folder = Path(os.environ.get("BAZAAR_CONTAINER_JOB_DIR") or tmp_path_factory.mktemp("pods"))
    redis = os.environ.get(REDIS_URL_VARIABLE, "")
    with Deployment(image, folder, postgres, redis_url=redis) as deployment:
        yield deployment


def test_the_image_runs_as_a_non_root_user_with_labels(image: str) -> None:
    config = json.loads(podman("image", "inspect", image))[0]["Config"]
    assert config["User"].split(":")[0] not in {"", "0", "root"}
    assert config["Entrypoint"] == ["bazaar"]
    labels = config["Labels"]
    for label in ("title", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{label}"), label


def test_no_build_secret_or_credential_file_in_the_image(image: str) -> None:
    history = podman("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    assert "PIP_CERT" not in history  # the build stage's CA bundle setting stayed there
    # As root, to see every folder. The base image's CA certificates and the test keys
    # that third-party packages ship are theirs; anything else would be ours.
    found = podman(
        "run", "--rm", "--network=none", "--user=0", "--entrypoint=sh", image, "-c",
        "find / -xdev \\( -name '*.pem' -o -name '*.key' -o -name '*.env' -o -name '.env' "
        "-o -name '.git' -o -name 'id_*' \\) -print 2>/dev/null",
    ).split()  # fmt: skip
    ours = [path for path in found if not path.startswith(THIRD_PARTY) or OURS in path]
    assert ours == []


@pytest.mark.timeout(400)  # the containers start in this test's fixture
def test_sign_up_browse_buy_get_paid_get_mail(shop: Deployment) -> None:
    with httpx.Client(base_url=shop.public_url, timeout=10.0, trust_env=False) as api:
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        signed_up = ok(
            api.post(
                "/api/auth/signup",
                json={"email": email, "password": "a long passphrase 42", "name": "Sam"},
            ),
            201,
        )
        auth = {"Authorization": f"Bearer {signed_up['access_token']}"}
        page = ok(api.get("/api/products", params={"page_size": 100}))
        product = next(p for p in page["items"] if p["stock"] >= 5)
        before = product["stock"]

        ok(api.post("/api/cart/items", json={"product_id": product["id"], "qty": 2}, headers=auth))
        created = ok(
            api.post("/api/checkout", headers={**auth, "Idempotency-Key": uuid.uuid4().hex}), 201
        )
        order = poll(
            lambda: ok(api.get(f"/api/orders/{created['order_id']}", headers=auth)),
            lambda o: o["status"] in {"paid", "cancelled"},
            timeout=30,
            what="a final status",
        )
        assert order["status"] == "paid", order

        mails = poll(lambda: messages_to(shop.maildir, email), bool, 20, f"a mail to {email}")
        assert len(mails) == 1
        poll(
            lambda: ok(api.get(f"/api/products/{product['id']}"))["stock"],
            lambda stock: stock == before - 2,
            timeout=15,
            what="stock down by 2",
        )
