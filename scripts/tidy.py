"""Shape checks that ruff does not make: functions of at most 70 lines, and no
leftover placeholders in node/, scripts/ and tests/.

Usage: python scripts/tidy.py   (exit 1 and one line per problem when untidy)
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("node", "scripts", "tests")
FUNCTION_LINES_MAX = 70
# Spelled in pieces so that this file does not match its own pattern.
_MARKERS = ("TO" + "DO", "FIX" + "ME", "X" * 3)
PLACEHOLDER = re.compile(r"\b(" + "|".join(_MARKERS) + r")\b|NotImplemented" + "Error")
GENERATED = re.compile(r"_pb2\.pyi?$")


def python_files() -> list[Path]:
    files = [path for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    return [path for path in files if not GENERATED.search(path.name)]


def problems_in(path: Path) -> list[str]:
    text = path.read_text()
    name = path.relative_to(ROOT)
    found = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > FUNCTION_LINES_MAX:
                found.append(
                    f"{name}:{node.lineno}: {node.name}() has {length} lines "
                    f"(at most {FUNCTION_LINES_MAX})"
                )
    for number, line in enumerate(text.splitlines(), start=1):
        if PLACEHOLDER.search(line):
            found.append(f"{name}:{number}: placeholder left: {line.strip()}")
    return found


def main() -> int:
    files = python_files()
    problems = [problem for path in files for problem in problems_in(path)]
    for problem in problems:
        print(problem)
    print(f"tidy: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
