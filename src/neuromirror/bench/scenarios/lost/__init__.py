"""The bench's scenarios of a loss upstream read back from the lab's stores (issue 53): :mod:`.lost_get` times
a fresh clone's ``datalad get`` of kept files and of an old Zarr state whose every S3 version was deleted,
against ``git annex get --from STORE`` of the same files, counting the requests the archive saw; :mod:`.repin`
(issue 78) times ``repin`` of 10^4 pins whose bucket moved, found again without reading their bytes."""
