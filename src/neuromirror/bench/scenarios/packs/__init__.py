"""The packed stores' scenarios (issue 57): keep-pack, keep-pack-s3 and verify-pack (:mod:`.keep`), pack-cycles (:mod:`.cycles`)."""
