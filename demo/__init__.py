"""The Gradio listening demo (``make demo`` / ``arsound demo``): ``app.py`` lays out four tabs, ``handlers/`` holds
what each button does as plain functions (numpy audio, file paths, images and one-line messages in, out), so pytest
calls them without a browser. Only ``arsound.load(...)`` and public model methods are used."""
