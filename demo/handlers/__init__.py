"""What the demo's buttons do, one module per tab; no Gradio import here."""
