"""The `medix ui` web demo (Gradio). Start it with: medix ui

Research use only: not for clinical decisions.
"""

from medix.web.results import published_rows, score_rows

__all__ = ["build_app", "published_rows", "score_rows"]


def __getattr__(name):
    if name == "build_app":  # imports gradio; keep `import medix.web` light
        from medix.web.app import build_app

        return build_app
    raise AttributeError(name)
