import pytest

pytest.importorskip("gradio", reason="the demo needs the [demo] extra: pip install -e '.[demo]'")
