"""`make bench`: Bazaar measured side by side with its baselines, in one run.

Every number comes with the baseline it is read against, taken in the same run and, where
it can be, in interleaved rounds (A, B, C, A, B, C...) so that whatever else the machine
does hits each side alike:

- catalog reads through the gateway, straight to the catalog service, and against a bare
  ASGI app on the same server stack (the framework floor);
- checkout at saturation (orders that reach `paid` per second), at half that rate and at
  a fixed arrival rate (latency from POST /api/checkout to `paid`), against the same work
  done by a plain monolith in one process and one transaction per order
  (`bench/monolith.py`);
- checkout as `make up` runs it (tracing on at the default sampling, exported to the local
  trace store: every section measures that platform) against tracing off, on two
  platforms in alternating rounds (`bench/tracing.py`);
- checkout with JetStream's fsync before every ack (`sync_interval: always`, as shipped)
  against one more platform whose NATS runs without it (a bench-only switch), and the
  cluster topology (PostgreSQL, 3 NATS nodes, Envoy, 2 replicas of every service)
  against the embedded one, at saturation and at a fixed rate (`bench/topologies.py`);
- the platform's event bus against raw nats-py JetStream on the same server;
- the memory of every process;
- with `--baseline REV`, the current code against another commit, each on its own
  platform, in alternating rounds (`bench/baseline.py`).

`python -m bench` (or `make bench`) prints one table and writes `bench/results/`.
`--smoke` (or BENCH_SMOKE=1) runs every section but the cluster in a few seconds with
tiny counts (`--smoke --only cluster` runs that one too).
"""
