"""Runs one store operation in its own process, so a test can kill it mid-transfer.

Usage: python store_child.py '<json>' where json = {"op": "publish"|"pull", "store": {...},
"sealed": dir | "family": name, "version": v, "throttle": seconds per progress update}.
Credentials come from the environment, as in production. The throttle slows the transfer
(a sleep in the progress callback) so that the kill lands mid-transfer on a fast machine;
the transfer code itself is unchanged.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from imagefactory.store import api
from imagefactory.store.settings import settings_or_raise
from imagefactory.store.transfer_meter import Progress


def main() -> int:
    args = json.loads(sys.argv[1])
    settings = settings_or_raise(args["store"], "store_child.json")
    throttle = float(args.get("throttle", 0))
    if throttle:
        update = Progress.update

        def slow_update(self: Progress, count: int) -> None:
            update(self, count)
            time.sleep(throttle)

        Progress.update = slow_update  # type: ignore[method-assign]
    if args["op"] == "publish":
        res = api.publish(settings, Path(args["sealed"]), channel=args.get("channel"))
        print(api.describe_publish(res))
    else:
        got = api.pull(settings, args["family"], channel=None, version=args.get("version"))
        print(api.describe_pull(got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
