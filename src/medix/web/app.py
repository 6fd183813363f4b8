"""The `medix ui` Gradio app: ask a question about a medical image; browse evaluation results.

    medix ui                                   # embedded smollm2-135m, http://127.0.0.1:7860
    medix ui --model MediX-R1-8B --server http://127.0.0.1:8000/v1

Calls only the public API (`medix.Assistant`). Every failure — a non-image upload, an empty question,
a model that does not load — becomes a message on the page; the server stays up.
Research use only: not for clinical decisions.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

from medix.errors import MedixError
from medix.infer import DEFAULT_MODEL
from medix.web.results import published_rows, score_rows

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "examples"
EXAMPLE_IMAGE = EXAMPLES_DIR / "chest_xray_synthetic.png"
EXAMPLE_QUESTION = "Is there an abnormal opacity in this chest X-ray, and where is it?"
DISCLAIMER = ("**Research use only — not for clinical decisions.** Answers come from a research model and can be "
              "wrong; never use them to diagnose or treat anyone.")
CSS = """
.modality-chip {display:inline-block; padding:2px 12px; border-radius:999px; font-weight:600;
                background:#1f6feb22; border:1px solid #1f6feb; color:inherit;}
.modality-chip.none {background:#8882; border-color:#888;}
"""


def _chip(modality: str | None) -> str:
    if modality:
        return f'<span class="modality-chip" id="modality-value">{html.escape(modality)}</span>'
    return '<span class="modality-chip none" id="modality-value">no modality tag</span>'


class DemoSession:
    """Holds one `medix.Assistant` (created on first use) and turns its answers or errors into UI values."""

    def __init__(self, model: str | None = None, server: str | None = None, max_new_tokens: int = 512):
        self.model, self.server, self.max_new_tokens = model, server, max_new_tokens
        self._assistant = None

    def assistant(self):
        if self._assistant is None:
            import medix

            self._assistant = medix.Assistant(self.model, server=self.server, max_new_tokens=self.max_new_tokens)
        return self._assistant

    def ask(self, image_path: str | None, question: str | None) -> tuple[str, str, str, str]:
        """→ (status markdown, modality chip html, reasoning markdown, answer text)."""
        try:
            reply = self.assistant().ask(question or "", image=image_path or None)
        except MedixError as err:
            return f"⚠️ {err}", _chip(None), "", ""
        except Exception as err:  # never let one request take the server down
            log.exception("inference failed")
            return f"⚠️ inference failed: {err.__class__.__name__}: {err}", _chip(None), "", ""
        answer = reply.answer if reply.answer is not None else reply.raw.strip()
        status = " · ".join(reply.notes) or "✅ answered"
        reasoning = reply.reasoning if reply.reasoning else "_(no reasoning block in the response)_"
        return status, _chip(reply.modality), reasoning, answer or "(the model returned no text)"


def preview(image_path: str | None):
    """Upload → (preview image or None, status message)."""
    if not image_path:
        return None, ""
    from medix.data.images import load_image

    try:
        img = load_image(image_path)
    except MedixError as err:
        return None, f"⚠️ {err}"
    original = img.info.get("medix_original_size")
    return img, (f"image downscaled from {original[0]}x{original[1]} to {img.size[0]}x{img.size[1]}"
                 if original else f"image loaded ({img.size[0]}x{img.size[1]})")


def open_results(folder: str | None):
    """Folder path → (rows for the results table, status message)."""
    try:
        rows = score_rows(folder or "")
    except MedixError as err:
        return [], f"⚠️ {err}"
    return [[r["task"], r["score"], r["n"]] for r in rows], f"loaded {len(rows)} rows from {folder}"


def _ask_tab(gr, session: DemoSession) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="Image (PNG, JPEG, …)", type="filepath", elem_id="image-upload")
            shown = gr.Image(label="Preview", type="pil", interactive=False, height=260, elem_id="image-preview")
            question = gr.Textbox(label="Question", lines=2, elem_id="question",
                                  placeholder="e.g. What abnormality is visible?")
            submit = gr.Button("Ask", variant="primary", elem_id="ask-button")
            gr.Examples([[str(EXAMPLE_IMAGE), EXAMPLE_QUESTION]], inputs=[upload, question],
                        label="Bundled example (synthetic image)")
        with gr.Column(scale=1):
            status = gr.Markdown(elem_id="status")
            gr.Markdown("**Modality**")
            chip = gr.HTML(_chip(None), elem_id="modality")
            with gr.Accordion("Reasoning", open=False, elem_id="reasoning-panel"):
                reasoning = gr.Markdown(elem_id="reasoning")
            answer = gr.Textbox(label="Answer", lines=4, interactive=False, elem_id="answer")
    upload.change(preview, inputs=upload, outputs=[shown, status])
    for trigger in (submit.click, question.submit):
        trigger(session.ask, inputs=[upload, question], outputs=[status, chip, reasoning, answer])


def _eval_tab(gr) -> None:
    rows, source = published_rows()
    gr.Markdown('Open a results folder containing `scores.json` (as `medix eval` writes it: '
                '`{"tasks": {task: {"score": float, "n": int}}, "overall": float}`, scores as fractions or %).')
    with gr.Row():
        folder = gr.Textbox(label="Results folder", placeholder="runs/eval-8b", elem_id="results-folder", scale=4)
        load = gr.Button("Open", elem_id="results-open", scale=1)
    status = gr.Markdown(elem_id="results-status")
    with gr.Row():
        with gr.Column():
            table = gr.Dataframe(headers=["task", "score (%)", "n"], label="Your results", interactive=False,
                                 elem_id="results-table")
        with gr.Column():
            gr.Dataframe(value=[[r["model"], r["task"], r["score"]] for r in rows],
                         headers=["model", "task", "score (%)"], label="Published", interactive=False)
            gr.Markdown(f"Source: {source}. Only verified overall averages are listed; per-task "
                        "published numbers will be added once checked against the paper.")
    for trigger in (load.click, folder.submit):
        trigger(open_results, inputs=folder, outputs=[table, status])


def build_app(model: str | None = None, server: str | None = None, max_new_tokens: int = 512):
    """The Gradio Blocks app (not launched). `launch(build_app(), port)` serves it on 127.0.0.1."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from medix.safe_text import display_url

    session = DemoSession(model, server, max_new_tokens)
    with gr.Blocks(title="MediX-R1 demo", analytics_enabled=False) as demo:
        gr.Markdown(f"# MediX-R1 — medical image question answering\nModel: `{model or DEFAULT_MODEL}`"
                    + (f" via {display_url(server)}" if server else " (local)"))
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Tab("Ask"):
            _ask_tab(gr, session)
        with gr.Tab("Evaluation"):
            _eval_tab(gr)
    return demo


def launch(demo, port: int = 7860, block: bool = True):
    """Serve on 127.0.0.1:port; returns the local URL. With block=False it returns right after start."""
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=not block,
                            css=CSS, max_file_size="50mb", show_error=True, quiet=not block,
                            allowed_paths=[str(EXAMPLES_DIR)], footer_links=["gradio"])
    return url
