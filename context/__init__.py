"""Local context for prompts: languages, positions, and what the model sees of the workspace.

Knows nothing of LSP: it takes plain strings and paths, so the CLI and benchmarks use it directly.
"""
