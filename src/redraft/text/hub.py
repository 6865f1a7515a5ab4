"""Where a model or tokenizer folder comes from: a local folder, or a Hugging Face Hub id.

A Hub id (``Qwen/Qwen2.5-0.5B-Instruct``) is looked up in the local Hugging Face cache first
(``local_files_only``, as transformers does offline) and downloaded only when it is not there and
the Hub can be reached; when neither works the error says so and asks for a local folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from redraft.errors import RedraftError

# What a Hub repository id looks like: 'name' or 'owner/name' (letters, digits, '-', '_', '.').
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# The files a causal LM and its tokenizer need (no other weight formats, no repository extras).
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.jinja", "*.tiktoken"]


def is_repo_id(name: str) -> bool:
    return bool(REPO_ID.fullmatch(name)) and ".." not in name and not name.endswith((".json", ".safetensors"))


def resolve_pretrained(name: str | Path) -> Path:
    """The local folder of ``name``: the folder itself, or a Hub id's snapshot (cached, else downloaded).

    A name that is neither a folder nor shaped like a Hub id comes back as it is, for the caller's
    own "not found" error.
    """
    path = Path(name)
    text = str(name)
    if path.is_dir() or not is_repo_id(text):
        return path
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(text, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache entry: try the Hub
        pass
    if constants.is_offline_mode():
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            return Path(snapshot_download(text, allow_patterns=DOWNLOAD_PATTERNS))
        except Exception as exc:  # no network, unknown or gated repository, disk full ...
            first_line = (str(exc).strip().splitlines() or [""])[0]
            reason = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    raise RedraftError(
        f"cannot download {text}: no network / not in the local cache ({reason}), and it is no local folder; "
        f"pass a local folder (e.g. one written by `huggingface-cli download {text} --local-dir DIR`)"
    )
