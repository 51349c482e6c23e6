"""The reference fixtures in the repository are the recorded ones, byte for byte (tests/fixtures/README.md)."""

import hashlib
import json

from conftest import REFERENCE_DIR


def test_every_reference_file_matches_its_recorded_size_and_sha256():
    files = json.loads((REFERENCE_DIR / "index.json").read_text())["files"]
    assert len(files) >= 20
    for entry in files:
        data = (REFERENCE_DIR / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"], entry["file"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
