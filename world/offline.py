"""The program talks to nothing but 127.0.0.1 and the configured Ollama host.

Model weights come from installed packages and the project's own files, never from a model hub at
run time, and nothing reports usage anywhere. `world` applies `go_offline()` when it is imported,
before any library that could reach out (huggingface_hub reads its switches at import) is loaded:
- the Hugging Face libraries (diffusers, transformers, huggingface_hub) work offline, send no
  telemetry and draw no loading bars;
- LangChain's tracing to LangSmith is off, whatever the environment says;
- local addresses never go through a proxy set in the environment (HTTP(S)_PROXY), so the prompts
  sent to the embedded model stay on this machine; OPENAI_PROXY, which LangChain's OpenAI client
  would use for every request, is dropped.
"""

from __future__ import annotations

import os

SWITCHES = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",   # a loading bar on stderr would tear the live view
    "LANGCHAIN_TRACING_V2": "false", "LANGCHAIN_TRACING": "false", "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
}
LOCAL = ("127.0.0.1", "localhost", "::1")


def go_offline() -> None:
    """Set the libraries' offline switches in this process's environment (idempotent)."""
    os.environ.update(SWITCHES)
    os.environ.pop("OPENAI_PROXY", None)
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(hosts + [h for h in LOCAL if h not in hosts])
