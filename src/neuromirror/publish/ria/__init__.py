"""A DataLad RIA store as a publish target (``publish --to ria+file://`` / ``ria+ssh://``).

:mod:`.publish` decides what goes in (datasets by id, aliases, the filtered root, kept content,
embargoed dandisets held back); :mod:`.layout` is the store's layout read from its files;
:mod:`.put` puts one dataset in; :mod:`.kept` links kept content into its object trees and records
the ORA remote; :mod:`.root` builds the root's filtered commit; :mod:`.target` is where the store
is: this host, or another over ssh (:mod:`.ssh`).
"""
