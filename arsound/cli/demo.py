"""``arsound demo [--port 7860] [--share off] [--out DIR] [--music DIR ...]``: the Gradio listening demo
(the top-level ``demo/`` folder, found beside the package in a checkout or under ``arsound/_shipped/`` in a wheel),
served on 127.0.0.1 with no network access."""
from __future__ import annotations

import importlib

from .common import no_extra, output_folder


def add_parser(subparsers) -> None:
    d = subparsers.add_parser("demo", help="serve the Gradio listening demo on 127.0.0.1",
                              description="Music, vocoder, tokenizer and image tabs over the shipped checkpoints, "
                                          "in the browser (needs the [demo] extra: pip install 'arsound[demo]').")
    d.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 (default 7860)")
    d.add_argument("--share", choices=("off", "on"), default="off",
                   help="a public gradio.live link (uses the network; default off)")
    d.add_argument("--out", help="folder for the generated files (default: a fresh temporary folder)")
    d.add_argument("--music", action="append", default=[], metavar="DIR",
                   help="a MusicGenerator folder to offer beside the shipped ones (repeatable)")
    d.set_defaults(func=cmd_demo)


def load_app():
    """The demo's ``app`` module, or a one-line error when gradio or the demo folder is missing."""
    from ..core.files import load_from_path, shipped_dir

    if importlib.util.find_spec("gradio") is None:
        raise ValueError("the demo needs gradio: pip install 'arsound[demo]' (or run `make demo`)")
    folder = shipped_dir("demo")
    load_from_path(folder, "arsound_demo")
    return importlib.import_module("arsound_demo.app")


def cmd_demo(args, extra: list[str]) -> int:
    no_extra(extra)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.out:
        output_folder(args.out)
    app = load_app()
    print(f"arsound demo: http://127.0.0.1:{args.port} (Ctrl+C stops it)", flush=True)
    app.launch(app.build(args.out, args.music), args.port, args.share == "on")
    return 0
