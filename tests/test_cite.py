"""``neuromirror cite``: output that pastes into a paper (BibTeX) or a CITATION.cff, as a user would use it.

Why: a citation must carry the archive's own authors, DOI and license *and*
the mirror's commit, and it must parse — a BibTeX entry that breaks LaTeX on
an ``&`` in a dataset name, or a CITATION.cff missing a required key, is worse
than none.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import bibtexparser
import pytest
import yaml

from helpers.retrieve import Sample, build_sample


@pytest.fixture(scope="module")
def sample(dandi_archive, tmp_path_factory) -> Sample:  # noqa: ANN001
    return build_sample(
        dandi_archive, tmp_path_factory.mktemp("cite") / "mirror", name="Spikes & waves: 100% of V1_L2/3 {units}"
    )


def test_text_has_archive_citation_doi_commit_and_retrieval(sample: Sample) -> None:
    pin = sample.run.json("pin", f"{sample.source}@{sample.v1}")
    text = sample.run.ok("cite", f"{sample.source}@{sample.v1}")
    first = text.splitlines()[0]
    # the archive's own citation (DANDI renders it), with the version's DOI
    assert first.startswith("Doe, Jane; Roe, Richard")
    assert f"https://doi.org/{pin['doi']}" in first and f"Version {sample.v1}" in first
    assert pin["commit"] in text and f"tag {sample.v1}" in text
    assert f"neuromirror get {sample.source}@{sample.v1} --to DIR" in text
    assert f"datalad clone {pin['dataset']} DIR && git -C DIR checkout {pin['commit']}" in text


def test_bibtex_parses_with_bibtexparser(sample: Sample) -> None:
    pin = sample.run.json("pin", f"{sample.source}@{sample.v1}")
    out = sample.run.ok("cite", f"{sample.source}@{sample.v1}", "--format", "bibtex")
    lib = bibtexparser.parse_string(out)
    assert not lib.failed_blocks
    (entry,) = lib.entries
    f = {k: v for k, v in entry.fields_dict.items()}
    assert entry.entry_type == "misc"
    assert entry.key == f"dandi_{sample.id}_{sample.v1.replace('.', '_')}"
    assert f["author"].value == r"Doe, Jane and Roe, Richard and {Lab of Neural Data \& Co}"
    assert "Not Cited" not in out  # includeInCitation: false
    # LaTeX specials of the name are escaped, so the entry also survives LaTeX
    assert f["title"].value == r"{Spikes \& waves: 100\% of V1\_L2/3 \{units\}}"
    assert f["doi"].value == pin["doi"] and f["url"].value == f"https://doi.org/{pin['doi']}"
    assert f["year"].value == "2024" and f["version"].value == sample.v1
    assert pin["commit"] in f["note"].value and f["license"].value == "CC-BY-4.0"


def _check_cff_by_hand(data: dict) -> None:
    """CFF 1.2.0: required keys and the types of what we write (independently of citation.check_cff)."""
    for key in ("cff-version", "message", "title", "authors"):
        assert key in data, key
    assert data["cff-version"] == "1.2.0"
    assert isinstance(data["message"], str) and isinstance(data["title"], str)
    assert isinstance(data["authors"], list) and data["authors"]
    for a in data["authors"]:
        assert isinstance(a, dict)
        assert isinstance(a.get("family-names"), str) or isinstance(a.get("name"), str)
        assert set(a) <= {"family-names", "given-names", "name", "orcid", "affiliation", "email"}
    assert data["type"] in ("dataset", "software")
    assert isinstance(data["date-released"], dt.date)
    for k in ("version", "doi", "commit", "license", "url"):
        if k in data:
            assert isinstance(data[k], str), k
    for ident in data.get("identifiers", []):
        assert ident["type"] in ("doi", "url", "swh", "other") and isinstance(ident["value"], str)


def test_cff_is_valid_citation_cff(sample: Sample, tmp_path: Path) -> None:
    from neuromirror.pin.citation import check_cff

    pin = sample.run.json("pin", f"{sample.source}@{sample.v2}")
    cff = tmp_path / "CITATION.cff"
    code, _, err = sample.run("cite", f"{sample.source}@{sample.v2}", "--format", "cff", "-o", str(cff))
    assert code == 0 and "wrote" in err
    data = yaml.safe_load(cff.read_text())
    _check_cff_by_hand(data)
    assert check_cff(data) == []
    assert data["title"] == "Spikes & waves: 100% of V1_L2/3 {units}"
    assert data["authors"][0] == {
        "family-names": "Doe",
        "given-names": "Jane",
        "orcid": "https://orcid.org/0000-0002-1825-0097",
    }
    assert data["authors"][2] == {"name": "Lab of Neural Data & Co"}
    assert data["doi"] == pin["doi"] and data["version"] == sample.v2 and data["commit"] == pin["commit"]
    assert data["license"] == "CC-BY-4.0"
    assert pin["commit"] in data["message"] and "neuromirror get" in data["message"]
    assert {"type": "doi", "value": pin["doi"]}.items() <= data["identifiers"][0].items()


def test_draft_has_no_doi_but_a_commit(sample: Sample) -> None:
    from neuromirror.pin.citation import check_cff

    pin = sample.run.json("pin", f"{sample.source}@draft")
    text = sample.run.ok("cite", f"{sample.source}@draft")
    assert "doi.org" not in text and pin["commit"] in text and "draft changes" in text
    data = yaml.safe_load(sample.run.ok("cite", f"{sample.source}@draft", "-f", "cff"))
    assert "doi" not in data and check_cff(data) == []
    lib = bibtexparser.parse_string(sample.run.ok("cite", f"{sample.source}@draft", "-f", "bibtex"))
    assert not lib.failed_blocks and "doi" not in lib.entries[0].fields_dict


def test_json_and_published_sibling(sample: Sample, tmp_path: Path) -> None:
    info = sample.run.json("cite", f"{sample.source}@{sample.v1}")
    assert info["doi"] and info["commit"] and info["license"] == ["CC-BY-4.0"]
    assert info["authors"][0]["family"] == "Doe" and info["publisher"] == "DANDI Archive"
    # once published, the citation tells others to clone from the published copy
    sample.run.ok("publish", sample.source, "--to", str(tmp_path / "pub"))
    info = sample.run.json("cite", f"{sample.source}@{sample.v1}")
    assert info["clone_url"] == str(tmp_path / "pub" / "dandi" / sample.id)
    assert f"--from {info['clone_url']}" in info["get"]
    json.dumps(info)


def test_check_cff_catches_problems() -> None:
    from neuromirror.pin.citation import check_cff

    assert "missing authors" in check_cff({"cff-version": "1.2.0", "message": "m", "title": "t"})
    assert any(
        "date" in p
        for p in check_cff(
            {
                "cff-version": "1.2.0",
                "message": "m",
                "title": "t",
                "authors": [{"name": "x"}],
                "date-released": "yesterday",
            }
        )
    )
