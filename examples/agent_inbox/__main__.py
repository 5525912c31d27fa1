"""Start the agent inbox: ``python -m examples.agent_inbox --sandbox``."""

from __future__ import annotations

from .app import cli

if __name__ == "__main__":
    cli()
