"""The bench's scenarios a network away (issue 50, ``scripts/bench --rtt``): :mod:`.sides` syncs each archive
shape at RTT 0 and at the RTT asked (and throttled), :mod:`.read_nwb` reads an NWB file in place with pynwb
through ``neuromirror://`` against remfile, a reader process each (:mod:`.read_nwb_client`)."""
