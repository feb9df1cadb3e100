"""The listening demo: four tabs (music, vocoder, tokenizer, images) over the shipped checkpoints, served on
127.0.0.1 with no network access (no analytics, no CDN, no hub). This file only lays out the UI; what each button
does is a plain function in ``handlers/``.

    make demo                                       # or: arsound demo [--port 7860] [--share off]
    python demo/app.py --music path/to/hierarchy    # a MusicGenerator folder beside the shipped ones

Requests queue (at most ``QUEUE_SIZE`` waiting, one running at a time); every problem a user can cause shows one
line in the tab's status and the server keeps serving.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")      # before gradio is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

if __package__ in (None, ""):                                   # `python demo/app.py`: import demo.handlers
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "demo"

from .handlers import images, music, tokenizer, vocoder  # noqa: E402
from .handlers.common import USER_ERRORS, one_line  # noqa: E402

QUEUE_SIZE = 16
MAX_LEVELS = 3
ALL_LEVELS = "all levels"
_STOPS: dict[str, threading.Event] = {}


def _error(e: BaseException) -> str:
    return f"**Error:** {one_line(e)}"


def player(label: str, elem_id: str | None = None, visible: bool = True) -> gr.Audio:
    """An output player: the browser's own <audio controls> element (no waveform drawing)."""
    return gr.Audio(label=label, type="filepath", interactive=False, elem_id=elem_id, visible=visible,
                    waveform_options=gr.WaveformOptions(show_recording_waveform=False))


def _stop_event(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "default"
    return _STOPS.setdefault(key, threading.Event())


# ---- music ----------------------------------------------------------------------------------------------------
def music_tab(out_root: Path, extra_models: list[str]):
    """The music controls; returns what the app's load event needs (the model box, its handler, its targets)."""
    shipped = list(music.music_models())
    choices = shipped + [m for m in extra_models if m not in shipped]
    gr.Markdown("Music from a hierarchy of priors over VQ-VAE codes: the top level first (a preview in seconds), "
                "then each upsampler. " + ("" if shipped else "No hierarchy ships yet: type a MusicGenerator "
                                           "folder into the model box."))
    with gr.Row():
        model = gr.Dropdown(choices, value=choices[0] if choices else None, label="Model (name or folder)",
                            allow_custom_value=True, elem_id="music-model")
        seconds = gr.Number(10, label="Seconds", minimum=0.01, maximum=music.MAX_SECONDS, elem_id="music-seconds")
        n = gr.Slider(1, music.MAX_CLIPS, 1, step=1, label="Clips")
        seed = gr.Number(0, label="Seed", precision=0, elem_id="music-seed")
        new_seed = gr.Button("New seed", size="sm")
    with gr.Row():
        instrument = gr.Dropdown([], label="Instrument", allow_custom_value=True)
        temperature = gr.Number(0, label="Temperature (0: each level's, as the model's recipe chose them)",
                                minimum=0)
        stop_level = gr.Dropdown([ALL_LEVELS], value=ALL_LEVELS, label="Stop at level (a preview)",
                                 elem_id="music-stop")
    with gr.Accordion("Advanced", open=False):
        per_level = gr.Textbox("", label="Temperature per level, top first (e.g. 1.0, 0.95, 0.9); empty: the one "
                                         "above")
        guidance = gr.Number(None, label="Upper-code guidance of the upsamplers (empty: the model's own; 0: off; "
                                         "higher: clearer keys, less of the instrument's sound)", minimum=0)
        drafts = gr.Number(None, label="Drafts of the upsamplers, the one that follows the notes above kept (empty: "
                                       "the model's own; 1: off; more: clearer keys, slower)", minimum=1, precision=0)
    with gr.Accordion("Continue this audio, or a codes file", open=False):
        with gr.Row():
            prompt = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio to continue")
            prompt_seconds = gr.Number(None, label="Prompt seconds (empty: all)", minimum=0)
            codes = gr.File(file_types=[".npz"], label="Codes file (.npz) to continue or upsample",
                            elem_id="music-codes")
    with gr.Row():
        go = gr.Button("Generate", variant="primary", elem_id="music-generate")
        upsample = gr.Button("Upsample the last preview", elem_id="music-upsample")
        stop = gr.Button("Interrupt", variant="stop", elem_id="music-stop-button")
    status = gr.Markdown(elem_id="music-status")
    last_codes = gr.State([])
    clips = []
    for i in range(music.MAX_CLIPS):
        with gr.Column(visible=i == 0) as col:
            with gr.Row():
                audio = player(f"Clip {i}", f"music-clip-{i}")
                spec = gr.Image(label=f"Clip {i} spectrogram", interactive=False, height=160)
                files = gr.File(label=f"Clip {i}: WAV and codes", file_count="multiple", interactive=False)
            with gr.Row():
                levels = [player(f"Level {lv}", visible=False) for lv in range(MAX_LEVELS)]
        clips.append((col, audio, spec, files, levels))
    outputs = [status, last_codes] + [c for col, a, s, f, lv in clips for c in (col, a, s, f, *lv)]

    def on_model(name):
        if not name:
            return gr.update(), gr.update(), ""
        try:
            info = music.model_info(name)
        except USER_ERRORS as e:
            return gr.update(), gr.update(), _error(e)
        inst = info["instruments"]
        return (gr.update(choices=inst, value=inst[0] if inst else None),
                gr.update(choices=[ALL_LEVELS] + [str(lv) for lv in info["levels"]], value=ALL_LEVELS),
                f"levels {info['levels']} (top first), {info['sample_rate']} Hz")

    def run(name, secs, count, sd, inst, temp, temps, guide, n_drafts, audio_in, p_secs, codes_in, stop_at,
            request: gr.Request, progress=gr.Progress()):
        event = _stop_event(request)
        event.clear()
        try:
            t = [float(v) for v in temps.replace(",", " ").split()] if temps and temps.strip() else temp
            res = music.generate_music(name, secs, sd, int(count), temperature=t, guidance=guide, drafts=n_drafts,
                                       instrument=inst,
                                       prompt=audio_in, prompt_seconds=p_secs, codes=codes_in,
                                       stop_level=None if stop_at in (None, ALL_LEVELS) else int(stop_at),
                                       out_root=out_root, report=lambda f, d: progress(f, desc=d), stop=event)
        except USER_ERRORS as e:
            return [_error(e)] + [gr.skip()] * (len(outputs) - 1)
        upd = [res.message, [str(p) for p in res.codes]]
        for i, (col, a, s, f, lv) in enumerate(clips):
            shown = i < len(res.clips)
            upd += [gr.update(visible=shown), str(res.clips[i]) if shown else None,
                    res.spectrograms[i] if shown else None,
                    [str(res.clips[i]), str(res.codes[i])] if shown else None]
            upd += [gr.update(value=str(res.levels[k][i]), visible=True, label=f"Level {k}")
                    if shown and k in res.levels else gr.update(value=None, visible=False) for k in range(MAX_LEVELS)]
        return upd

    def run_upsample(name, secs, sd, inst, temp, temps, guide, n_drafts, last, request: gr.Request,
                     progress=gr.Progress()):
        if not last:
            return [_error(ValueError("no preview yet: generate with 'stop at level' first"))] + \
                [gr.skip()] * (len(outputs) - 1)
        return run(name, secs, 1, sd, inst, temp, temps, guide, n_drafts, None, None, last[0], ALL_LEVELS, request,
                   progress)

    def interrupt(request: gr.Request):
        _stop_event(request).set()
        return "Interrupted: generation stops after the current token; nothing is written."

    model.change(on_model, model, [instrument, stop_level, status])
    new_seed.click(lambda: random.randrange(2**31), None, seed, queue=False)
    inputs = [model, seconds, n, seed, instrument, temperature, per_level, guidance, drafts, prompt, prompt_seconds,
              codes, stop_level]
    ev = go.click(run, inputs, outputs, concurrency_id="cpu")
    ev_up = upsample.click(run_upsample, [model, seconds, seed, instrument, temperature, per_level, guidance,
                                          drafts, last_codes],
                           outputs, concurrency_id="cpu")
    stop.click(interrupt, None, status, queue=False)
    return model, on_model, [instrument, stop_level, status], (ev, ev_up)


# ---- vocoder --------------------------------------------------------------------------------------------------
def vocoder_tab(out_root: Path) -> None:
    models = list(vocoder.vocoder_models())
    examples = list(vocoder.examples())
    gr.Markdown("A clip through its log-mel and back: WaveNet (sampled, seeded) beside Griffin-Lim from the same "
                f"mel. Clips are cut to {vocoder.MAX_SECONDS:.0f} s (WaveNet draws one sample at a time).")
    with gr.Row():
        model = gr.Dropdown(models, value=models[0] if models else None, label="Vocoder", allow_custom_value=True)
        example = gr.Dropdown([""] + examples, value=examples[0] if examples else "", label="Shipped example",
                              elem_id="voc-example")
        temperature = gr.Number(0, label="Temperature (0: the one the model's recipe chose)", minimum=0)
        seed = gr.Number(0, label="Seed", precision=0)
        speaker = gr.Textbox("", label="Instrument / speaker (multi-speaker vocoders; empty: 0)")
        postfilter = gr.Textbox("", label="Band post-filter passes, both vocoders (empty: the model's, 32 for the "
                                          "shipped; 0: off)", elem_id="voc-postfilter")
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Your clip (overrides the example)",
                     elem_id="voc-input")
    go = gr.Button("Vocode", variant="primary", elem_id="voc-go")
    status = gr.Markdown(elem_id="voc-status")
    with gr.Row():
        with gr.Column():
            wn = player("WaveNet", "voc-wavenet")
            wn_spec = gr.Image(label="WaveNet spectrogram", interactive=False, height=160)
        with gr.Column():
            gl = player("Griffin-Lim", "voc-griffin")
            gl_spec = gr.Image(label="Griffin-Lim spectrogram", interactive=False, height=160)
        with gr.Column():
            in_spec = gr.Image(label="Input spectrogram", interactive=False, height=160)
    table = gr.Dataframe(headers=["vocoder", "LSD (dB)", "MR-STFT"], interactive=False, label="Distance to the input")

    def run(name, up, ex, temp, sd, spk, pf):
        try:
            r = vocoder.vocode_clip(name, up, ex, temperature=temp, seed=sd, speaker=spk or None, postfilter=pf,
                                    out_root=out_root)
        except USER_ERRORS as e:
            return [_error(e)] + [gr.skip()] * 6
        rows = [["WaveNet", r.scores["wavenet"]["lsd_db"], r.scores["wavenet"]["mrstft"]],
                ["Griffin-Lim", r.scores["griffin_lim"]["lsd_db"], r.scores["griffin_lim"]["mrstft"]]]
        return [r.message, str(r.wavenet), r.spectrograms["wavenet"], str(r.griffin_lim),
                r.spectrograms["griffin_lim"], r.spectrograms["input"], rows]

    go.click(run, [model, audio, example, temperature, seed, speaker, postfilter],
             [status, wn, wn_spec, gl, gl_spec, in_spec, table], concurrency_id="cpu")


# ---- tokenizer ------------------------------------------------------------------------------------------------
def tokenizer_tab(out_root: Path) -> None:
    models = list(tokenizer.tokenizer_models())
    gr.Markdown("An upload through the VQ-VAE tokenizer and back, from each level: fewer tokens per second "
                f"higher up (up to {tokenizer.MAX_SECONDS:.0f} s).")
    with gr.Row():
        model = gr.Dropdown(models, value=models[0] if models else None, label="Tokenizer", allow_custom_value=True)
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip", elem_id="tok-input")
    go = gr.Button("Encode and decode", variant="primary", elem_id="tok-go")
    status = gr.Markdown(elem_id="tok-status")
    slots = []
    with gr.Row():
        for lv in range(MAX_LEVELS):
            with gr.Column():
                slots.append((player(f"Level {lv}", f"tok-level-{lv}"),
                              gr.Image(label=f"Level {lv} spectrogram", interactive=False, height=160),
                              gr.Markdown()))

    def run(name, up):
        try:
            r = tokenizer.reconstruct(name, up, out_root=out_root)
        except USER_ERRORS as e:
            return [_error(e)] + [gr.skip()] * (3 * MAX_LEVELS)
        out = [r.message]
        for lv in range(MAX_LEVELS):
            if lv < len(r.levels):
                row = r.rows[lv]
                out += [str(r.levels[lv]), r.spectrograms[lv],
                        f"{row['bits_per_s'] / 1000:.1f} kbit/s, SI-SDR {row['si_sdr_db']:.1f} dB"]
            else:
                out += [None, None, ""]
        return out

    go.click(run, [model, audio], [status] + [c for s in slots for c in s], concurrency_id="cpu")


# ---- images ---------------------------------------------------------------------------------------------------
def images_tab() -> None:
    models = list(images.image_models())
    gr.Markdown("Binarized MNIST models: sample a grid, complete a half-drawn digit (its top half kept), or score a "
                "digit's likelihood against the test digits (the anomaly-detection use).")
    with gr.Row():
        model = gr.Dropdown(models, value=models[0] if models else None, label="Model", allow_custom_value=True,
                            elem_id="img-model")
        seed = gr.Number(0, label="Seed", precision=0)
        temperature = gr.Number(1.0, label="Temperature", minimum=0.01)
        count = gr.Slider(1, images.MAX_COUNT, 16, step=1, label="Count / completions", elem_id="img-count")
    status = gr.Markdown(elem_id="img-status")
    with gr.Row():
        with gr.Column():
            sample = gr.Button("Sample a grid", variant="primary", elem_id="img-sample")
            grid = gr.Image(label="Samples", interactive=False, elem_id="img-grid", format="png")
        with gr.Column():
            sketch = gr.Sketchpad(label="Draw (or upload) a digit", sources=("upload",), type="numpy",
                                  canvas_size=(280, 280))
            with gr.Row():
                complete = gr.Button("Complete the bottom half", elem_id="img-complete")
                score = gr.Button("Score it", elem_id="img-score")
            shown = gr.Image(label="Kept half, then completions / the digit as scored", interactive=False,
                             format="png")

    def safe(fn, n_out):
        def run(*args):
            try:
                return fn(*args)
            except USER_ERRORS as e:
                return [_error(e)] + [gr.skip()] * (n_out - 1)
        return run

    def run_sample(name, sd, temp, k):
        return ["", images.sample_grid(name, sd, temp, k)]

    def run_complete(name, img, sd, temp, k):
        return ["", images.complete(name, img, sd, min(int(k), images.MAX_COUNT - 1), temp)]

    def run_score(name, img):
        s = images.score(name, img)
        return [s.message, s.digit]

    sample.click(safe(run_sample, 2), [model, seed, temperature, count], [status, grid], concurrency_id="cpu")
    complete.click(safe(run_complete, 2), [model, sketch, seed, temperature, count], [status, shown],
                   concurrency_id="cpu")
    score.click(safe(run_score, 2), [model, sketch], [status, shown], concurrency_id="cpu")


# ---- the app --------------------------------------------------------------------------------------------------
def build(out_root: str | Path | None = None, music_models: list[str] = ()) -> gr.Blocks:
    """The four tabs; outputs go under ``out_root`` (default a temporary folder)."""
    out_root = Path(out_root or tempfile.mkdtemp(prefix="arsound-demo-")).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    with gr.Blocks(title="arsound: listen") as app:
        gr.Markdown("# arsound: autoregressive audio, music and images")
        with gr.Tabs():
            with gr.Tab("Music", id="music"):
                model, on_model, targets, _ = music_tab(out_root, [str(m) for m in music_models])
            with gr.Tab("Vocoder", id="vocoder"):
                vocoder_tab(out_root)
            with gr.Tab("Tokenizer", id="tokenizer"):
                tokenizer_tab(out_root)
            with gr.Tab("Images", id="images"):
                images_tab()
        app.load(on_model, model, targets)
    app.out_root = out_root
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return app


def launch(app: gr.Blocks, port: int = 7860, share: bool = False, block: bool = True):
    """Serve on 127.0.0.1:``port`` (``share`` asks Gradio for a public link: network, off by default)."""
    return app.launch(server_name="127.0.0.1", server_port=port, share=share, prevent_thread_lock=not block,
                      allowed_paths=[str(app.out_root)], footer_links=[], quiet=not block,
                      theme=gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                              font_mono=["ui-monospace", "monospace"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo/app.py", description="arsound's listening demo (Gradio, 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", choices=("off", "on"), default="off", help="a public Gradio link (default off)")
    p.add_argument("--out", help="output folder (default: a fresh temporary folder)")
    p.add_argument("--music", action="append", default=[], help="a MusicGenerator folder to offer (repeatable)")
    args = p.parse_args(argv)
    launch(build(args.out, args.music), args.port, args.share == "on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
