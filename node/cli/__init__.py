"""The ``scnode`` command line: one module per command, and the clients and tables
that scripts share with it."""

from node.cli._main import COMMANDS as COMMANDS
from node.cli._main import build_parser as build_parser
from node.cli._main import main as main
