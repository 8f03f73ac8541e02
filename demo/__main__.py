"""`python -m demo`: the demo without the console (a plain script on the engine API)."""

from __future__ import annotations

import os

from demo import app
from engine import Client, Engine


def main() -> None:
    url = os.environ.get("WAYMARK_DATABASE_URL", "sqlite:///waymark-demo.sqlite3")
    engine = Engine("waymark-demo", url)
    app.build(engine)
    engine.launch()
    with Client(url) as client:
        app.seed(client)
    print(f"Waymark demo on {url}: workflows enqueued; Ctrl-C to stop")
    try:
        engine.run_forever()
    except KeyboardInterrupt:
        engine.shutdown()


if __name__ == "__main__":
    main()
