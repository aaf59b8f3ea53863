"""airgap-lsp: a code assistant language server that never leaves the machine."""

__version__ = "0.1.0"
