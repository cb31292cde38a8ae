"""python app.py: the rsapp web page (Gradio + Leaflet map + chat), local and offline."""

from __future__ import annotations

import argparse
import logging

from starlette.middleware import Middleware

from rsapp.analyst import Analyst
from rsapp.ui.app import CSS, build_app
from rsapp.ui.routes import ROUTES, ClientCookie
from rsapp.ui.session import EXPORT_ROOT, MAX_UPLOAD_MB


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="rsapp: chat with remote-sensing imagery")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also open a public Gradio link (off by default)")
    p.add_argument("--weights", help="model folder (default: weights/rsapp-v2)")
    p.add_argument("--quant", default="auto", help="auto | int8 | nf4 | fp32")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    analyst = Analyst(weights=args.weights, quant=args.quant)
    EXPORT_ROOT.mkdir(parents=True, exist_ok=True)
    # The first page's imagery comes first; the model loads once it is out (rsapp.ui.app preload), or when asked.
    demo = build_app(analyst, preload=analyst.available())
    demo.queue(default_concurrency_limit=2).launch(
        server_name=args.host, server_port=args.port, share=args.share, css=CSS,
        max_file_size=f"{MAX_UPLOAD_MB}mb", footer_links=[],
        # the map's tiles and the exports beside Gradio's own routes, answered only to the browser that asked
        app_kwargs={"routes": list(ROUTES), "middleware": [Middleware(ClientCookie)]})


if __name__ == "__main__":
    main()
