"""The ``scnode`` command line: one module per command, and the clients and tables
that scripts share with it."""

from node.cli._main import COMMANDS as COMMANDS
from node.cli._main import build_parser as build_parser
from node.cli._main import main as main
from node.cli._paying import BatchPayer as BatchPayer
from node.cli._paying import PaymentRun as PaymentRun
from node.cli._paying import pay_with_progress as pay_with_progress
from node.cli._tables import channels_table as channels_table
from node.cli._tables import payments_table as payments_table
from node.cli._tables import wei_text as wei_text
