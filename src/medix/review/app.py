"""`medix review serve`: the reviewers' page (Gradio), one item at a time, blind.

    medix review serve review.sqlite                         # http://127.0.0.1:7861
    medix review serve review.sqlite --host 0.0.0.0          # on a network the team controls (docs/review.md)

A reviewer types a pseudonymous ID, then sees the question, its image, the reference (when the set shows it)
and answer A (and B), reasoning folded; they choose (buttons or keys: 1-4 / a b t w for pairwise; 1-3 / c p i for
grading), optionally comment, and the next item comes. Typing the same ID again resumes where they left off.
The page reads only `ReviewStore.next_item` / `submit` / `progress`: no model name, run path or A/B mapping
is ever loaded into this process's page state. Research use only.
"""

from __future__ import annotations

import io
import os

from medix.errors import MedixError
from medix.review.store import KINDS, Item, ReviewStore

NOTE = ("**Research use only.** You are reviewing answers written by AI models for a research study; they may be "
        "wrong and are never used for patient care. Use a pseudonymous reviewer ID (e.g. `dr-07`), never your name. "
        "Which model wrote which answer is hidden, and A / B change places from item to item.")
LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie (equally good)", "both_wrong": "Both wrong",
          "correct": "Correct", "partial": "Partially correct", "incorrect": "Incorrect"}
KEYS = {"A": ("1", "a"), "B": ("2", "b"), "tie": ("3", "t"), "both_wrong": ("4", "w"),
        "correct": ("1", "c"), "partial": ("2", "p"), "incorrect": ("3", "i")}


def shortcuts_script(kind: str) -> str:
    """A keydown listener clicking the choice buttons; keys typed into a text box are left alone."""
    mapping = {key: f"choice-{choice}" for choice in KINDS[kind] for key in KEYS[choice]}
    pairs = ", ".join(f"'{k}': '{v}'" for k, v in mapping.items())
    return ("<script>document.addEventListener('keydown', (e) => {"
            "const t = e.target; if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT')) return;"
            "if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;"
            f"const id = ({{{pairs}}})[e.key.toLowerCase()]; if (!id) return;"
            "const b = document.getElementById(id); if (b && b.offsetParent !== null) {e.preventDefault(); b.click();}"
            "});</script>")


class ReviewSession:
    """Turns the store's answers into the page's values; every failure becomes a message on the page."""

    def __init__(self, store: ReviewStore):
        self.store = store
        self.settings = store.settings()

    def _progress(self, reviewer: str | None) -> str:
        p = self.store.progress(reviewer)
        return (f"Your reviews: **{p['mine']}** · set: {p['complete']} of {p['items']} items have their "
                f"{p['k']} reviews ({p['reviews']} reviews in all)")

    def show(self, reviewer: str | None, item: Item | None, message: str) -> tuple:
        """→ (reviewer state, item state, status, progress, panel visible, header, question, image, reference,
        answer A, reasoning A, answer B, reasoning B, comment)."""
        progress = self._progress(reviewer) if reviewer else ""
        if item is None:
            return reviewer, None, message, progress, False, "", "", None, "", "", "", "", "", ""
        from PIL import Image

        image = Image.open(io.BytesIO(item.image)) if item.image else None
        header = f"Item {item.key} · {item.task} · {item.modality}"
        return (reviewer, item.key, message, progress, True, header, item.question, image,
                item.reference if self.settings.show_reference else "", item.answer_a,
                item.reasoning_a or "(no reasoning)", item.answer_b or "", item.reasoning_b or "(no reasoning)", "")

    def start(self, reviewer_id: str | None) -> tuple:
        try:
            item = self.store.next_item(reviewer_id or "")
        except MedixError as err:
            return self.show(None, None, f"Error: {err}")
        reviewer = reviewer_id.strip()
        return self.show(reviewer, item, f"Reviewing as **{reviewer}**." if item else self._done())

    def choose(self, choice: str, reviewer: str | None, key: int | None, comment: str | None) -> tuple:
        if not reviewer or key is None:
            return self.show(reviewer, None, "Enter your reviewer ID and press Start first")
        try:
            new = self.store.submit(key, reviewer, choice, comment or "")
            item = self.store.next_item(reviewer)
        except MedixError as err:
            return self.show(reviewer, None, f"Error: {err}")
        said = (f"Saved — item {key}: recorded ({LABELS[choice]})." if new
                else f"item {key}: already recorded earlier — your first answer is kept.")
        return self.show(reviewer, item, said + ("" if item else " " + self._done()))

    def _done(self) -> str:
        return ("Nothing left for you right now: you have reviewed every item that still needs a review, or the "
                "last ones are on other reviewers' screens (come back in a few minutes). Thank you!")


def build_review_app(store: ReviewStore):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    session = ReviewSession(store)
    kind = session.settings.kind
    with gr.Blocks(title="medix expert review", analytics_enabled=False) as demo:
        gr.Markdown("# Expert review — " + ("which answer is better?" if kind == "pairwise"
                                              else "is the answer correct?"))
        gr.Markdown(NOTE, elem_id="review-note")
        reviewer_state, item_state = gr.State(None), gr.State(None)
        with gr.Row():
            reviewer_box = gr.Textbox(label="Reviewer ID (pseudonym)", elem_id="reviewer-id", scale=3)
            start = gr.Button("Start / resume", variant="primary", elem_id="review-start", scale=1)
        status = gr.Markdown(elem_id="review-status")
        progress = gr.Markdown(elem_id="review-progress")
        with gr.Column(visible=False, elem_id="review-panel") as panel:
            header = gr.Markdown(elem_id="review-header")
            with gr.Row():
                question = gr.Textbox(label="Question", interactive=False, elem_id="review-question", scale=2)
                image = gr.Image(label="Image", type="pil", interactive=False, height=300, elem_id="review-image")
            reference = gr.Textbox(label="Reference answer", interactive=False, elem_id="review-reference",
                                   visible=session.settings.show_reference)
            answers = []
            with gr.Row():
                for side in ("a", "b")[:2 if kind == "pairwise" else 1]:
                    with gr.Column():
                        answer = gr.Textbox(label=f"Answer {side.upper()}" if kind == "pairwise" else "Answer",
                                            interactive=False, elem_id=f"answer-{side}")
                        with gr.Accordion("Reasoning", open=False, elem_id=f"reasoning-{side}-panel"):
                            reasoning = gr.Textbox(show_label=False, interactive=False, elem_id=f"reasoning-{side}")
                    answers += [answer, reasoning]
            if kind != "pairwise":
                answers += [gr.State(""), gr.State("")]
            comment = gr.Textbox(label="Comment (optional)", elem_id="review-comment")
            keys = " · ".join(f"{LABELS[c]}: {' / '.join(KEYS[c])}" for c in KINDS[kind])
            with gr.Row():
                buttons = {c: gr.Button(LABELS[c], elem_id=f"choice-{c}") for c in KINDS[kind]}
            gr.Markdown(f"Keys: {keys} (outside the comment box)")
        outputs = [reviewer_state, item_state, status, progress, panel, header, question, image, reference,
                   *answers, comment]

        def shown(*values):
            values = list(values)
            values[4] = gr.update(visible=values[4])
            return values

        for trigger in (start.click, reviewer_box.submit):
            trigger(lambda rid: shown(*session.start(rid)), inputs=reviewer_box, outputs=outputs)
        for choice, button in buttons.items():
            button.click(lambda r, k, c, choice=choice: shown(*session.choose(choice, r, k, c)),
                         inputs=[reviewer_state, item_state, comment], outputs=outputs, trigger_mode="once")
    return demo


def launch_review(demo, kind: str, host: str = "127.0.0.1", port: int = 7861, block: bool = True) -> str:
    """Serve the page; returns its local URL (with block=False right after start)."""
    _, url, _ = demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                            show_error=False, head=shortcuts_script(kind), footer_links=[])
    return url
