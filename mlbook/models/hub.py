"""A model in a local folder or the local Hugging Face cache ("local folder or HF cache", one
implementation for the whole book), and the hub itself, only when it answers within 1.5 s."""
from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

from .registry import unknown

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def env_offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


_REACHABLE: bool | None = None  # probed once per process


def hub_reachable(timeout: float = 1.5) -> bool:
    """False under HF_HUB_OFFLINE=1, else one TCP connect to the hub (≤ ``timeout`` s, DNS included)."""
    global _REACHABLE
    if env_offline():
        return False
    if _REACHABLE is None:
        from urllib.parse import urlparse

        url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        answered: list[bool] = []

        def probe():
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                answered.append(True)
            except OSError:
                pass

        # DNS lookups ignore socket timeouts; a daemon thread bounds the whole probe.
        t = threading.Thread(target=probe, daemon=True)
        t.start()
        t.join(timeout)
        _REACHABLE = bool(answered)
    return _REACHABLE


def has_weights(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(
        any(folder.glob(pat)) for pat in ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")
    )


def from_hf_cache(hub_id: str) -> Path | None:
    """The snapshot of ``hub_id`` in the local HF cache, if complete enough to load; no network."""
    if not HUB_ID.match(hub_id):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached, invalid id, broken cache: all mean "not here"
        return None
    return folder if has_weights(folder) else None

def download(hub_id: str, name: str) -> Path:
    """Fetch config, tokenizer and one set of weights (safetensors if the repo has them)."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(hub_id)
    except Exception as e:
        raise unknown(name, f"the hub does not know it ({type(e).__name__})") from e
    weights = ["*.safetensors", "*.safetensors.index.json"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
    allow = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", *weights]
    return Path(snapshot_download(hub_id, allow_patterns=allow))


def local_checkpoint(name: str) -> Path | None:
    """``name`` as a local ``from_pretrained`` folder: the folder itself (with a ``config.json``), else
    its snapshot in the local Hugging Face cache; None when neither holds it.  Never downloads."""
    p = Path(str(name)).expanduser()
    if p.is_dir() and (p / "config.json").exists():
        return p.resolve()
    if not HUB_ID.match(str(name)):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(str(name), local_files_only=True))
    except Exception:  # not cached, invalid id, broken cache: all mean "not here"
        return None
    return folder if (folder / "config.json").exists() else None
