"""code-kb's LSP server and command line: the only package that imports pygls and lsprotocol."""

__version__ = "0.1.0"
