"""Generate the Python protobuf modules under node/proto/ from proto/.

Usage:
    python scripts/gen_proto.py           # regenerate in place
    python scripts/gen_proto.py --check   # exit 1 if the committed code differs

The generated modules are committed (so a user needs no protoc) and CI runs
--check, so they can never drift from their .proto sources.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_PACKAGE = "scnode/v1"
TARGET = ROOT / "node" / "proto"
# protoc writes `from scnode.v1 import x_pb2`; our modules live in node.proto.
IMPORT_PATTERN = re.compile(r"^from scnode\.v1 import (\w+_pb2)", re.MULTILINE)


def generate(out_dir: Path) -> dict[str, str]:
    """Run protoc into out_dir and return {file name: text} of the results."""
    sources = sorted((PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))
    if not sources:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PROTO_PACKAGE}")
    args = [
        "protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *(str(path.relative_to(PROTO_ROOT)) for path in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated: dict[str, str] = {}
    for path in sorted((out_dir / PROTO_PACKAGE).iterdir()):
        text = IMPORT_PATTERN.sub(r"from node.proto import \1", path.read_text())
        generated[path.name] = text
    return generated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if node/proto differs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        generated = generate(Path(scratch))
    if options.check:
        stale = [
            name
            for name, text in generated.items()
            if not (TARGET / name).is_file() or (TARGET / name).read_text() != text
        ]
        if stale:
            print(f"node/proto is stale; run scripts/gen_proto.py: {', '.join(stale)}")
            return 1
        print(f"node/proto matches proto/ ({len(generated)} files)")
        return 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, text in generated.items():
        (TARGET / name).write_text(text)
    print(f"wrote {len(generated)} files to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
