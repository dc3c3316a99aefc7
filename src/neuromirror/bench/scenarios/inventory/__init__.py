"""The bench's scenarios of the archive's S3 Inventory (issue 75): :mod:`.read` times a synthetic inventory of
``--inventory-rows`` rows read on one core, its peak RSS bounded by one data file."""
