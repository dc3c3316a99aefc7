"""The Python API as a notebook uses it: every example in docs/python-api.md runs, in order, in one namespace.

The mirror is made the way a user makes one (``neuromirror sync`` from the stand-in DANDI archive);
the examples find it through ``$NEUROMIRROR_ROOT`` as the commands do.  Then the API's answers are
checked against the command line's own ``--json``, so that the CLI standing on the API stays true.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.keep import make_dandiset

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_every_example_of_the_python_api_doc_runs(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 3_000, "sub-02/b.nwb": 1_500})
    monkeypatch.setenv("NEUROMIRROR_ROOT", str(d.run.root))
    monkeypatch.chdir(tmp_path)
    blocks = examples()
    assert len(blocks) >= 5, "the doc lost its examples"
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name} example {i + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    # what the examples printed is what the mirror holds
    assert f"{d.version} published" in printed
    assert "sub-01/a.nwb 3000 " in printed
    assert (tmp_path / "lab-store").is_dir()
    assert namespace["source"] == d.source


def test_the_api_answers_what_the_commands_print(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 2_000})
    source = d.source
    with api.open(d.run.root) as m:
        versions = m.versions(source)
        pin = m.pin(d.spec)
        files = {f.path: f for f in m.version(d.spec).files()}
    listed = json.loads(d.run.ok("versions", source, "--json"))
    assert [(v.label, v.commit, v.kind) for v in versions] == [(r["version"], r["commit"], r["kind"]) for r in listed]
    assert pin == json.loads(d.run.ok("pin", d.spec, "--json"))
    assert files["sub-01/a.nwb"].size == 2_000 and files["sub-01/a.nwb"].urls
    # a user's mistake is the command's one line, raised
    with pytest.raises(api.UserError, match="has no version"):
        api.open(d.run.root).version(f"{source}@9.999999.9999")
    with pytest.raises(api.UserError, match="no mirror at"):
        api.open(tmp_path / "nowhere")
