"""Test-only launcher: olah (a self-hosted Hugging Face hub mirror) in offline mode over plain git folders.

Offline olah resolves a branch or tag name ("main", "v1") only from its own proxy cache, which is empty here, so
`from_pretrained("org/model")` gets a 401 for the bare `main` revision. This launcher replaces its two offline
commit lookups with `git rev-parse` in the mirror folder, then runs olah's own command line unchanged.

    PYTHONPATH=<olah install> python tests/helpers/shims/hub_server.py --config hub.toml
"""

from __future__ import annotations

import os
import subprocess

from olah import server
from olah.utils import repo_utils


def _git_commit(app, repo_type, org, repo, revision: str) -> str | None:
    for root in app.state.app_settings.config.mirrors_path:
        folder = os.path.join(root, repo_type or "models", org or "", repo)
        if not os.path.isdir(folder):
            continue
        done = subprocess.run(["git", "-C", folder, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip()
    return None


async def commit_offline(app, repo_type, org, repo, commit):
    return _git_commit(app, repo_type, org, repo, commit)


async def newest_commit_offline(app, repo_type, org, repo):
    return _git_commit(app, repo_type, org, repo, "HEAD")


repo_utils.get_commit_hf_offline = commit_offline
repo_utils.get_newest_commit_hf_offline = newest_commit_offline

if __name__ == "__main__":
    server.main()
