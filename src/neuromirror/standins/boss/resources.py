"""The JSON routes: lists of resources, a collection, experiment, channel or frame, metadata, downsample info.

Why permissions are checked per route: the BOSS lets anonymous callers read only
resources flagged ``public``, and it does not refuse a list but silently leaves the
others out, while reading one gives 403; a mirror must cope with both, so the
stand-in answers each route the way ``bosscore``'s views do.
"""

from __future__ import annotations

from typing import Any, Mapping

from neuromirror.standins.boss.archive import BossArchive
from neuromirror.standins.boss.model import Channel, Collection, Experiment
from neuromirror.standins.boss.protocol import (
    INVALID_POST_ARGUMENT,
    INVALID_URL,
    MISSING_PERMISSION,
    boss_error,
    not_found,
    require_read,
)


class ResourceAnswers(BossArchive):
    """The payloads of every routed GET but the cutout (call with the lock held)."""

    creator = "neuromirror-standin"

    def _json_answer(self, route: str, p: Mapping[str, str], query: Mapping[str, str], authed: bool) -> Any:
        if route == "collection_list":
            return {"collections": [c.name for c in self._collections.values() if authed or c.public]}
        if route in ("coord_list", "coord"):
            return self._coord_answer(route, p)
        coll = self._collections.get(p["collection"])
        if coll is None:
            raise not_found(p["collection"])
        return self._in_collection(route, coll, p, query, authed)

    def _in_collection(
        self, route: str, coll: Collection, p: Mapping[str, str], query: Mapping[str, str], authed: bool
    ) -> Any:
        """The routes under a collection: its experiments, itself, its metadata, or on to an experiment."""
        if route == "experiment_list":
            return {"experiments": [e.name for e in coll.experiments.values() if authed or e.public]}
        if route == "collection":
            return self._collection_answer(coll, authed)
        if route == "meta" and "experiment" not in p:
            return self._meta_answer(coll.metadata, coll.public or authed, query)
        exp = coll.experiments.get(p["experiment"])
        if exp is None:
            raise not_found(p["experiment"])
        return self._in_experiment(route, coll, exp, p, query, authed)

    def _in_experiment(
        self,
        route: str,
        coll: Collection,
        exp: Experiment,
        p: Mapping[str, str],
        query: Mapping[str, str],
        authed: bool,
    ) -> Any:
        """The routes under an experiment: its channels, itself, its metadata, or on to a channel."""
        if route == "channel_list":
            return {"channels": [c.name for c in exp.channels.values() if authed or c.public]}
        if route == "experiment":
            return self._experiment_answer(coll, exp, authed)
        if route == "meta" and "channel" not in p:
            return self._meta_answer(exp.metadata, exp.public or authed, query)
        chan = exp.channels.get(p["channel"])
        if chan is None:
            raise not_found(p["channel"])
        return self._channel_route(route, coll, exp, chan, query, authed)

    def _coord_answer(self, route: str, p: Mapping[str, str]) -> Any:
        """The coordinate frames' routes: their list, or one frame (404 when it does not exist)."""
        if route == "coord_list":
            return {"coords": list(self._coords)}
        cf = self._coords.get(p["coord"])
        if cf is None:
            raise not_found(p["coord"])
        return cf.to_json()

    def _channel_route(
        self, route: str, coll: Collection, exp: Experiment, chan: Channel, query: Mapping[str, str], authed: bool
    ) -> Any:
        """The routes of one channel: the channel itself, its metadata, its downsample info."""
        if route == "channel":
            return self._channel_answer(exp, chan, authed)
        if route == "meta":
            return self._meta_answer(chan.metadata, chan.public or authed, query)
        if route == "downsample":
            require_read(chan, authed)
            return self.downsample_info(coll.name, exp.name, chan.name)
        raise boss_error(404, INVALID_URL, "Invalid URL")  # pragma: no cover - all routes handled

    def _collection_answer(self, coll: Collection, authed: bool) -> dict[str, Any]:
        """A collection's resource: 403 unless readable; its experiments, public ones only when not authed."""
        if not (authed or coll.public):
            raise boss_error(403, MISSING_PERMISSION, f"Missing read permissions on the resource {coll.name}")
        visible = [e.name for e in coll.experiments.values() if authed or coll.public or e.public]
        return {
            "name": coll.name,
            "public": coll.public,
            "description": coll.description,
            "experiments": visible,
            "creator": self.creator,
        }

    def _experiment_answer(self, coll: Collection, exp: Experiment, authed: bool) -> dict[str, Any]:
        """An experiment's resource: 403 unless readable; its channels, public ones only when not authed."""
        if not (authed or exp.public):
            raise boss_error(403, MISSING_PERMISSION, f"Missing read permissions on the resource {exp.name}")
        return {
            "channels": [c.name for c in exp.channels.values() if authed or exp.public or c.public],
            "name": exp.name,
            "public": exp.public,
            "description": exp.description,
            "collection": coll.name,
            "coord_frame": exp.coord_frame,
            "num_hierarchy_levels": exp.num_hierarchy_levels,
            "hierarchy_method": exp.hierarchy_method,
            "num_time_samples": exp.num_time_samples,
            "time_step": exp.time_step,
            "time_step_unit": exp.time_step_unit,
            "creator": self.creator,
        }

    def _channel_answer(self, exp: Experiment, chan: Channel, authed: bool) -> dict[str, Any]:
        """A channel's resource (403 unless readable), with the fields intern reads."""
        if not (authed or chan.public):
            raise boss_error(403, MISSING_PERMISSION, f"Missing read permissions on the resource {chan.name}")
        return {
            "name": chan.name,
            "public": chan.public,
            "description": chan.description,
            "experiment": exp.name,
            "default_time_sample": chan.default_time_sample,
            "type": chan.type,
            "base_resolution": 0,
            "datatype": chan.datatype,
            "creator": self.creator,
            "sources": list(chan.sources),
            "downsample_status": chan.downsample_status,
            "related": list(chan.related),
            # intern.array reads raw["storage_type"] to choose its backend
            "storage_type": "spdb",
            "bucket": None,
            "cv_path": None,
        }

    @staticmethod
    def _meta_answer(store: Mapping[str, str], readable: bool, query: Mapping[str, str]) -> Any:
        if not readable:
            raise boss_error(403, MISSING_PERMISSION, "This user does not have the required permissions")
        if "key" not in query:
            return {"keys": list(store)}
        key = query["key"]
        if key not in store:
            raise boss_error(400, INVALID_POST_ARGUMENT, f"Invalid request. Key {key} Not found in the database")
        return {"key": key, "value": store[key]}
