"""``publish --to github:ORG``: datasets as GitHub repositories, made and kept through GitHub's REST API.

:mod:`.target` says what ``github:ORG`` means for a source (name, homepage, description, visibility, token);
:mod:`.client` makes the REST calls and waits out rate limits; :mod:`.repos` asserts one repository (made once,
pushed, metadata, releases; a state file so a rerun with nothing new calls nothing); :mod:`.publish` runs it over
sources and their Zarr subdatasets.
"""
