"""The bench's scenarios of a loss upstream, and of what tells it, covers it or finds it again: :mod:`.lost_get`
(issue 53) times a fresh clone's ``datalad get`` of kept files and of an old Zarr state whose every S3 version was
deleted, against ``git annex get --from STORE`` of the same files, counting the requests the archive saw;
:mod:`.inventory_read` (issue 75) the archive's S3 Inventory, where ``audit --inventory`` finds what the archive
lost, read on one core; :mod:`.inventory_cold` (issue 75) a cold sync from it beside the listing path; :mod:`.gap`
(issue 75) the gap-fill that keeps only what the archive's other backup does not hold; :mod:`.repin` (issue 78)
``repin`` of 10^4 pins whose bucket moved, found again without reading their bytes."""
