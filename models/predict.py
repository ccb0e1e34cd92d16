"""Grade photos from the command line: one JSON object per photo on stdout.

    python -m models.predict [--model PATH] [--batch-size N] PATH...

PATHs are files or folders (searched recursively for .jpg/.jpeg/.png/.webp). Each line is either

    {"path": ..., "grade": 2, "grade_probs": [p0, p1, p2, p3], "p_damaged": 0.93, "model_version": ...}
    {"path": ..., "error": "..."}

in input order, flushed as soon as its batch is graded. Exit status: 0 if every photo was graded,
1 if any error line was printed, 2 for a usage error or a model that cannot be loaded (or fails).

This output format is a stable contract: external evaluation parses it. Add keys only with care and
never rename or remove one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from models.inference import ModelError, load_model
from models.preprocessing import iter_image_files

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.predict",
        description="Grade parcel-damage photos; prints one JSON object per photo.",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="model.onnx or a weights version folder (default: $CLAIMLANE_MODEL_PATH, else the "
        "newest bundled model)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="photos per inference batch (default: 16)",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    return parser


def _image_files(paths: Sequence[str]) -> Iterator[Path]:
    # One argument at a time, so results for the first start flowing before later folders are listed.
    for raw in paths:
        yield from iter_image_files([raw])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on usage errors
    try:
        model = load_model(args.model)
    except ModelError as exc:
        print(f"error: cannot load model: {exc}", file=sys.stderr)
        return EXIT_USAGE

    any_error = False
    try:
        for result in model.iter_predictions(_image_files(args.paths), batch_size=args.batch_size):
            record = result.to_json()
            any_error = any_error or "error" in record
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
        # again while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BAD_INPUT if any_error else EXIT_OK
    except ModelError as exc:  # e.g. the model produced NaNs: no answer can be trusted
        print(f"error: model failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_BAD_INPUT if any_error else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
