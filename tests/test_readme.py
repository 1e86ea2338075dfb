"""README's Python example runs exactly as printed.

The example names ``photos/``, ``query.jpg``, ``datasets/pitts30k`` and ``best.pth``;
the test lays those out in a temporary folder (the real Lund photos with EXIF GPS,
odd frames as the database and an even frame as the query, the tiny synthetic city
in the benchmark layout, and a saved model) and runs the code block unchanged.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    """The code of the ```python block in README's "Python API" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Python API") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Python API section has no python code block"
    return match.group(1)


def test_readme_python_example_runs_as_printed(
    tmp_path: Path, lund_dir: Path, tiny_city_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import torch

    from vgloc.models import create_model, save_model

    photos = tmp_path / "photos"
    photos.mkdir()
    frames = sorted(lund_dir.glob("*.jpg"))
    for frame in frames[::2]:
        shutil.copy(frame, photos / frame.name)
    shutil.copy(frames[1], tmp_path / "query.jpg")
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "pitts30k").symlink_to(tiny_city_root, target_is_directory=True)
    torch.manual_seed(0)
    save_model(create_model("resnet18.conv4+netvlad64"), tmp_path / "best.pth")
    monkeypatch.chdir(tmp_path)

    exec(compile(python_example(), str(README), "exec"), {"__name__": "__readme__"})

    out = capsys.readouterr().out
    lines = out.splitlines()
    # locate's print: lat lon confidence path, near the Lund walk.
    lat, lon, confidence, path = lines[0].split(" ", 3)
    assert 55.6 < float(lat) < 55.8 and 13.1 < float(lon) < 13.3
    assert 0.0 < float(confidence) <= 1.0
    assert Path(path).parent == photos.resolve() or Path(path).parent == photos
    # The Localizer located the path and the encoded bytes to the same place.
    first, second = lines[1].rsplit(" ", 3), lines[2].rsplit(" ", 3)
    assert first[0].endswith("query.jpg") and second[0] == "<bytes #1>"
    assert first[1:] == second[1:]
    assert "| queries |" in out and "R@1" in out
    for name in ("results.json", "predictions.csv", "report.html"):
        assert (tmp_path / "results" / name).is_file()


def readme_command_lines(path: Path = README) -> list[str]:
    """Every ``vgloc ...`` command line in README's (or ``path``'s) bash blocks.

    Comments are cut, continuation lines joined, and usage-style ``[--option VALUE]``
    parts dropped (they show what may be added).
    """
    text = path.read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            code = line.split("  #")[0].split(" # ")[0]
            code = re.sub(r"\s*\[[^\]]*\]", "", code).strip()  # usage-style [--optional VALUE]
            if code.startswith("torchrun "):
                code = "vgloc " + code.split("-m vgloc.cli ", 1)[1]
            if code.startswith("vgloc "):
                lines.append(code)
    return lines


def test_every_readme_command_line_parses() -> None:
    """Each command line README shows is accepted by the CLI's parser, options included."""
    import shlex

    from vgloc.cli import build_parser

    lines = readme_command_lines()
    assert len(lines) >= 10 and any(ln.startswith("vgloc serve ") for ln in lines)
    parser = build_parser()
    for line in lines:
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit as exc:  # argparse reports a bad line by exiting
            raise AssertionError(f"README command does not parse: {line}") from exc
