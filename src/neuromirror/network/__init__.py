"""Talking to the archives over a network: the per-endpoint pace every request goes through
(:mod:`.pacing`: AIMD in-flight limit, Retry-After, backoff, loud give-up), shared with a sync's worker
processes (:mod:`.shared`), its counters (:mod:`.stats`) as a sync reports them (:mod:`.report`), threads
for requests as many as the paces let in flight (:mod:`.workers`), a ``requests`` adapter through them
(:mod:`.adapter`), and the urllib3 connection pools that
honour the environment's proxy (:mod:`.pools`); and a free port for a server the mirror starts here (:mod:`.ports`).

Knows nothing of archives, git-annex, datasets or the index. Imports nothing of neuromirror outside
``network``: everything else may import it.
"""
