"""The LSP side: the server, its wiring and the features. The only package that knows pygls."""
