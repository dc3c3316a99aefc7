"""The sample experiment: one collection, frame and experiment with an image, a 16-bit image and an annotation.

Why a fixed sample: the stand-in's own tests, the mirror's tests and the demo all
need the same small but real structure (several cuboids with partial edges, two
levels, every datatype, a little metadata), under names they can share.
"""

from __future__ import annotations

from neuromirror.standins.boss.archive import BossArchive

SAMPLE_COLLECTION = "neuromirror_demo"
SAMPLE_EXPERIMENT = "exp1"
SAMPLE_COORD_FRAME = "neuromirror_demo_frame"
#: channel name -> (type, datatype) of the sample experiment
SAMPLE_CHANNELS: dict[str, tuple[str, str]] = {
    "image8": ("image", "uint8"),
    "image16": ("image", "uint16"),
    "annotation": ("annotation", "uint64"),
}


def populate_sample(standin: BossArchive, shape: tuple[int, int, int], num_hierarchy_levels: int) -> None:
    """Add the sample collection, frame, experiment, channels and metadata (see ``BossStandIn.sample``)."""
    z, y, x = shape
    standin.add_collection(SAMPLE_COLLECTION, "neuromirror stand-in sample collection")
    standin.add_coord_frame(
        SAMPLE_COORD_FRAME, x, y, z, 4.0, 4.0, 40.0, "nanometers", description="sample coordinate frame"
    )
    standin.add_experiment(
        SAMPLE_COLLECTION,
        SAMPLE_EXPERIMENT,
        SAMPLE_COORD_FRAME,
        description="synthetic EM-like volume",
        num_hierarchy_levels=num_hierarchy_levels,
    )
    for name, (ctype, datatype) in SAMPLE_CHANNELS.items():
        standin.add_channel(
            SAMPLE_COLLECTION,
            SAMPLE_EXPERIMENT,
            name,
            type=ctype,
            datatype=datatype,
            description=f"synthetic {datatype} {ctype}",
            sources=["image8"] if ctype == "annotation" else (),
        )
    standin.set_metadata(SAMPLE_COLLECTION, "project", "neuromirror stand-in")
    standin.set_metadata(f"{SAMPLE_COLLECTION}/{SAMPLE_EXPERIMENT}/image8", "stain", "synthetic")
