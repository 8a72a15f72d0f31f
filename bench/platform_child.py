"""An embedded platform in a process of its own, for `--baseline`: run by another checkout's
Python, so that the platform is that checkout's code.

    python bench/platform_child.py HOME PORT ENV_JSON

starts `bazaar.runner.platform.Platform` (the same class the bench starts its own with),
prints one JSON line (public_url, urls, pids) once it is ready, and stops it when its
standard input closes. Only the standard library and `bazaar` are imported: the file runs
by path, from the current checkout, under the baseline's interpreter."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(home: str, port: str, env: str) -> int:
    from bazaar.runner.platform import Platform

    platform = Platform(Path(home), int(port), extra_env=json.loads(env))
    try:
        platform.start(timeout=180.0)
        ready = {
            "public_url": platform.public_url,
            "urls": platform.urls,
            "pids": {name: pid for name, pid in platform.pids.items() if pid},
        }
        print(json.dumps(ready), flush=True)
        sys.stdin.read()  # until the bench closes our standard input
    finally:
        platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
