"""The model's tools — bash, read_file, write_file, edit_file — each gated by user approval.

Not offered yet: the core client sends no tools (see the issue that adds them).
"""

__all__: list[str] = []
