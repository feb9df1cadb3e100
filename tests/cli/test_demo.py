"""``arsound demo``: the verb finds the top-level demo/ folder (as a wheel would ship it), builds the app, and
refuses bad arguments in one line before starting anything."""
from __future__ import annotations

import pytest

from arsound.cli import main

gradio = pytest.importorskip("gradio", reason="the demo needs the [demo] extra")


def test_demo_app_is_found_and_builds(tmp_path):
    from arsound.cli.demo import load_app

    app = load_app()
    assert app.__name__ == "arsound_demo.app" and app.__file__.endswith("demo/app.py")
    blocks = app.build(tmp_path / "out")
    assert isinstance(blocks, gradio.Blocks) and blocks.out_root == (tmp_path / "out").resolve()
    tabs = [b.label for b in blocks.blocks.values() if isinstance(b, gradio.Tab)]
    assert tabs == ["Music", "Vocoder", "Tokenizer", "Images"]


def test_demo_refuses_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--port", "0"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--share", "maybe"])
