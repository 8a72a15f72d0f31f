"""The NATS configuration fsyncs before every ack; only the bench's measurement-only
variable changes that (bench/topologies.py, the fsync section). And the runner's
nats-server gets GOGC=50 (`cluster.NATS_GOGC`)."""

from pathlib import Path

import pytest

from bazaar.runner import cluster


def test_every_config_fsyncs_before_the_ack_by_default(tmp_path: Path) -> None:
    assert cluster.sync_interval({}) == "always"
    assert "sync_interval: always" in cluster.single_nats_config(1, 2, tmp_path)
    node = cluster.clustered_nats_config(
        "nats-1", {"client": 1, "cluster": 2, "monitor": 3}, [2], tmp_path
    )
    assert "sync_interval: always" in node


def test_the_bench_variable_writes_the_config_without_it(tmp_path: Path) -> None:
    env = {cluster.BENCH_SYNC_INTERVAL_VARIABLE: "default"}
    config = cluster.single_nats_config(1, 2, tmp_path, cluster.sync_interval(env))
    assert "sync_interval" not in config
    assert "jetstream { store_dir:" in config
    assert cluster.sync_interval({cluster.BENCH_SYNC_INTERVAL_VARIABLE: "2m"}) == "2m"


def test_a_bad_bench_interval_is_refused() -> None:
    with pytest.raises(cluster.ClusterError, match="BAZAAR_BENCH_NATS_SYNC_INTERVAL"):
        cluster.sync_interval({cluster.BENCH_SYNC_INTERVAL_VARIABLE: "2m; evil: 1"})


def test_nats_collects_its_heap_sooner_unless_told_otherwise() -> None:
    assert cluster.nats_environment({"PATH": "/bin"}) == {"PATH": "/bin", "GOGC": "50"}
    assert cluster.nats_environment({"GOGC": "200"})["GOGC"] == "200"
