"""How to cite a mirrored version: the archive's own citation plus the exact mirror state.

Facts come from, in order of trust:

* the archive's metadata committed with the version — DANDI's ``dandiset.yaml``
  (name, contributor[] with includeInCitation, license, url, doi, citation,
  datePublished), AIND's ``data_description.json`` (name, investigators,
  institution, license, creation_time);
* the index row of the version (doi, citation, date) and the tag message
  (``Name:``, ``DOI:``, ``Citation:``, ``Source:`` lines);
* the mirror itself: source id, commit, tag, and where to clone it from.

Renderers: plain text (paste into a paper), BibTeX (``@misc``, which every
style knows), CITATION.cff (1.2.0) and JSON.  Who is credited is read by
:mod:`neuromirror.pin.credits`; a CFF document is checked by :mod:`neuromirror.pin.cff_check`.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror import archives
from neuromirror.pin.cff_check import DOI_NAME
from neuromirror.pin.cff_check import check_cff as check_cff  # callers and tests import it from here
from neuromirror.pin.credits import Author, aind_authors, dandi_authors, licenses
from neuromirror.records import VersionKind
from neuromirror.results import Item, Result, Status
from neuromirror.util import gitutil


@dataclass(repr=False)
class CitationInfo(Result):
    """How to cite a version (``Mirror.cite``): ``to_json()`` is ``cite --json``, ``render()`` each format; one
    ``ok`` item (a version the mirror cannot cite raises)."""

    source: str
    version: str
    kind: Optional[str]
    commit: str
    tag: Optional[str]
    dataset: str  # the mirror's dataset path
    relpath: str
    clone_url: str  # where others clone it from (published sibling, else the mirror path)
    title: str
    authors: list[Author] = field(default_factory=list)
    year: Optional[str] = None
    date: Optional[str] = None  # YYYY-MM-DD
    doi: Optional[str] = None
    url: Optional[str] = None  # the archive's page for this version
    license: list[str] = field(default_factory=list)  # SPDX ids
    publisher: Optional[str] = None
    citation: Optional[str] = None  # the archive's own citation text
    keywords: list[str] = field(default_factory=list)
    description: Optional[str] = None
    #: set for an older draft state named by its commit (``SPEC@COMMIT``): what it is, said in every format
    state: Optional[str] = None

    @property
    def spec(self) -> str:
        return f"{self.source}@{self.version}"

    @property
    def get_command(self) -> str:
        if self.clone_url == self.dataset:
            return f"neuromirror get {self.spec} --to DIR"
        return f"neuromirror get {self.spec} --to DIR --from {shlex.quote(self.clone_url)}"

    @property
    def datalad_commands(self) -> str:
        # quoted: a RIA store's URL (ria+https://HOST/PATH#~dandi/000027) holds # and ~
        return f"datalad clone {shlex.quote(self.clone_url)} DIR && git -C DIR checkout {self.commit} && datalad get -d DIR ."

    @property
    def mirror_note(self) -> str:
        tag = f", tag {self.tag}" if self.tag else ""
        state = f" This is {self.state}." if self.state else ""
        return f"Mirrored as DataLad dataset {self.relpath} at commit {self.commit}{tag} (neuromirror).{state}"

    @property
    def retrieval(self) -> str:
        return f"Retrieve exactly this state: {self.get_command} (or: {self.datalad_commands})."

    def render(self, fmt: str = "text") -> str:
        """The citation as ``cite --format`` writes it: ``text``, ``bibtex``, ``cff`` (CITATION.cff) or ``json``."""
        if fmt == "json":
            return json.dumps(to_json(self), indent=2, default=str) + "\n"
        renderers = {"text": to_text, "bibtex": to_bibtex, "cff": to_cff}
        if fmt not in renderers:
            raise ValueError(f"unknown citation format {fmt!r} (known: text, bibtex, cff, json)")
        return renderers[fmt](self)

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    def items(self) -> list[Item]:
        return [Item(Status.OK, self.spec, self.doi or f"commit {self.commit}")]

    def lines(self) -> list[str]:
        return self.render("text").splitlines()

    def __repr__(self) -> str:
        return f"<CitationInfo {self.spec} {self.commit[:7]}" + (f" {self.doi}>" if self.doi else ">")


# -- gathering -----------------------------------------------------------------
def _show(ds: Path, commit: str, path: str) -> Optional[bytes]:
    proc = gitutil.run(ds, "show", f"{commit}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def _tag_fields(ds: Path, tag: Optional[str]) -> dict[str, str]:
    if not tag:
        return {}
    msg = gitutil.out(ds, "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)", check=False)
    out: dict[str, str] = {}
    for line in msg.splitlines():
        for name in ("Name", "DOI", "Citation", "Source"):
            if line.startswith(name + ": "):
                out[name.lower()] = line[len(name) + 2 :].strip()
    return out


def _yaml(raw: bytes) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _metadata(ds: Path, commit: str, path: str, parse: Callable[[bytes], Any]) -> Optional[dict[str, Any]]:
    """The archive's metadata file committed with the version, parsed; None when absent or not a mapping (a
    citation is then made of the index's and the tag's facts alone)."""
    raw = _show(ds, commit, path)
    md = parse(raw) if raw else None
    return md if isinstance(md, dict) else None


def _from_dandiset_yaml(ds: Path, commit: str, info: CitationInfo) -> None:
    """DANDI's ``dandiset.yaml``: what it says wins over the index's and the tag's facts."""
    md = _metadata(ds, commit, "dandiset.yaml", _yaml)
    if md is None:
        return
    info.title = str(md.get("name") or info.title)
    info.authors = dandi_authors(md.get("contributor")) or info.authors
    info.license = licenses(md.get("license")) or info.license
    for field_name in ("url", "doi", "citation", "description"):  # the same name in the file and the citation
        setattr(info, field_name, md.get(field_name) or getattr(info, field_name))
    info.keywords = [str(k) for k in md.get("keywords") or [] if isinstance(k, (str, int))]
    when = _published(md) if info.kind == VersionKind.PUBLISHED else None
    info.date = when or info.date


def _published(md: dict[str, Any]) -> Optional[str]:
    """The day a published version's ``datePublished`` names (YYYY-MM-DD), None when it names none."""
    when = md.get("datePublished")
    return when[:10] if isinstance(when, str) and re.match(r"^\d{4}-\d{2}-\d{2}", when) else None


def _from_data_description(ds: Path, commit: str, info: CitationInfo) -> None:
    """AIND's ``data_description.json``: the investigators (else the institution) are the authors."""
    md = _metadata(ds, commit, "data_description.json", _json)
    if md is None:
        return
    info.title = str(md.get("name") or info.title)
    info.authors = aind_authors(md) or info.authors
    info.license = licenses(md.get("license")) or info.license
    if isinstance(md.get("creation_time"), str) and not info.date:
        info.date = md["creation_time"][:10]


#: the readers of the metadata files an archive's datasets carry (its record's ``citation_file`` names one)
_EXTRACTORS = {"dandiset.yaml": _from_dandiset_yaml, "data_description.json": _from_data_description}


def _archive_facts(name: str) -> tuple[str, Optional[Callable[[Path, str, CitationInfo], None]]]:
    """The publisher the archive's record names (its own name when none registered it), and the reader of the
    metadata file its datasets carry (None: none)."""
    archive = archives.get(name)
    if archive is None:
        return name, None
    return archive.publisher, _EXTRACTORS.get(archive.citation_file or "")


def citation_info(mirror: Any, spec: Any) -> CitationInfo:
    from neuromirror.dataset.states import UNPUBLISHED
    from neuromirror.pin.published import published_url
    from neuromirror.pin.record import state_row

    row = state_row(mirror, spec)
    src = mirror.index.source(spec.source)
    ds = mirror.root / src.dataset
    publisher, extractor = _archive_facts(spec.archive)
    tagf = _tag_fields(ds, row.tag)
    info = CitationInfo(
        source=spec.source,
        version=row.label,
        kind=row.kind,
        commit=row.commit,
        tag=row.tag,
        dataset=str(ds),
        relpath=src.dataset,
        clone_url=published_url(ds, "published") or str(ds),
        title=tagf.get("name") or f"{publisher} {spec.name}",
        doi=row.doi or tagf.get("doi"),
        citation=row.citation or tagf.get("citation"),
        url=tagf.get("source"),
        publisher=publisher,
        state=UNPUBLISHED if row.named_by_commit else None,
    )
    if row.date and re.match(r"^\d{4}-\d{2}-\d{2}", str(row.date)):
        info.date = str(row.date)[:10]
    if extractor is not None:
        extractor(ds, row.commit, info)
    if info.doi and info.doi.lower().startswith("https://doi.org/"):
        info.doi = info.doi[len("https://doi.org/") :]
    if info.date:
        info.year = info.date[:4]
    if not info.authors:
        info.authors = [Author(info.publisher or publisher, organization=True)]
    return info


# -- renderers -----------------------------------------------------------------
def archive_citation(info: CitationInfo) -> str:
    """The archive's citation, or one in the same style built from the metadata."""
    if info.citation:
        return " ".join(info.citation.split())
    names = "; ".join(a.name for a in info.authors)
    where = f"https://doi.org/{info.doi}" if info.doi else (info.url or info.source)
    return (
        f"{names} ({info.year or 'n.d.'}) {info.title} (Version {info.version}) [Data set]. {info.publisher}. {where}"
    )


def to_text(info: CitationInfo) -> str:
    lines = [archive_citation(info)]
    if info.doi and info.doi not in lines[0]:
        lines.append(f"DOI: {info.doi}")
    lines.append(info.mirror_note)
    if info.kind == VersionKind.DRAFT or info.state:
        lines.append("The archive's draft changes over time: cite the commit above, which pins the exact state used.")
    lines.append(info.retrieval)
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in " ".join(str(text).split()))


def _url_field(text: str) -> str:
    # url/doi fields are verbatim for the url package; only braces would unbalance the entry
    return str(text).replace("{", "%7B").replace("}", "%7D")


def bibtex_key(info: CitationInfo) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{info.source}_{info.version}").strip("_")


def to_bibtex(info: CitationInfo) -> str:
    authors = " and ".join(
        "{" + tex_escape(a.name) + "}"
        if a.organization or not a.family
        else tex_escape(f"{a.family}, {a.given}" if a.given else a.family)
        for a in info.authors
    )
    fields: list[tuple[str, str]] = [
        ("author", authors),
        ("title", "{" + tex_escape(info.title) + "}"),
        ("year", info.year or ""),
        ("version", tex_escape(info.version)),
        ("howpublished", tex_escape(info.publisher or "")),
        ("doi", _url_field(info.doi) if info.doi else ""),
        ("url", _url_field(f"https://doi.org/{info.doi}" if info.doi else info.url or "")),
        ("note", tex_escape(f"{info.mirror_note} {info.retrieval}")),
    ]
    if info.license:
        fields.append(("license", tex_escape(", ".join(info.license))))
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
    return f"@misc{{{bibtex_key(info)},\n{body}\n}}\n"


def cff_dict(info: CitationInfo) -> dict[str, Any]:
    """The CITATION.cff 1.2.0 document of ``info`` (``cite -f cff``); :func:`check_cff` holds it valid."""
    out: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": ("If you use this dataset, please cite it as below. " + info.mirror_note + " " + info.retrieval),
        "type": "dataset",
        "title": info.title,
        "authors": [_cff_author(a) for a in info.authors],
        "version": info.version,
    }
    out.update(_cff_optional(info))
    out["commit"] = info.commit
    out["identifiers"] = _cff_identifiers(info)
    if info.keywords:
        out["keywords"] = info.keywords
    if info.description:
        out["abstract"] = " ".join(str(info.description).split())
    return out


def _cff_author(a: Author) -> dict[str, Any]:
    """A person by family and given names (and ORCID, affiliation); an organization, or a name not split, by name."""
    if a.organization or not a.family:
        return {"name": a.name}
    d: dict[str, Any] = {"family-names": a.family}
    for key, value in (("given-names", a.given), ("orcid", a.orcid), ("affiliation", a.affiliation)):
        if value:
            d[key] = value
    return d


def _cff_optional(info: CitationInfo) -> dict[str, Any]:
    """The keys CFF restricts, each only when ``info`` has a value CFF accepts (a DOI, a date, SPDX, URLs)."""
    out: dict[str, Any] = {}
    if info.doi and DOI_NAME.match(info.doi):
        out["doi"] = info.doi
    if info.date:
        try:
            out["date-released"] = date.fromisoformat(info.date)
        except ValueError:
            pass
    if info.license:
        out["license"] = info.license[0] if len(info.license) == 1 else list(info.license)
    if info.url and re.match(r"^https?://", info.url):
        out["url"] = info.url
    if re.match(r"^(https?|ssh|git)://", info.clone_url):
        out["repository"] = info.clone_url
    return out


def _cff_identifiers(info: CitationInfo) -> list[dict[str, Any]]:
    """The archive's DOI, the mirror's source and version, and the dataset's commit."""
    idents: list[dict[str, Any]] = []
    if info.doi and DOI_NAME.match(info.doi):
        idents.append({"type": "doi", "value": info.doi, "description": f"The {info.publisher}'s DOI of this version"})
    idents.append(
        {"type": "other", "value": f"{info.source}@{info.version}", "description": "neuromirror source and version"}
    )
    idents.append(
        {"type": "other", "value": f"git:{info.commit}", "description": f"commit of the DataLad dataset {info.relpath}"}
    )
    return idents


def to_cff(info: CitationInfo) -> str:
    import yaml

    text = yaml.safe_dump(cff_dict(info), sort_keys=False, allow_unicode=True, width=100)
    return "# CITATION.cff for " + info.spec + " (written by neuromirror cite)\n" + text


def to_json(info: CitationInfo) -> dict[str, Any]:
    d = asdict(info)
    d.update(
        {
            "citation_text": archive_citation(info),
            "retrieval": info.retrieval,
            "get": info.get_command,
            "datalad": info.datalad_commands,
            "bibtex_key": bibtex_key(info),
        }
    )
    return d
