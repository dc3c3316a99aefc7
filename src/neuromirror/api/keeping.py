"""The API's verbs that keep, check, restore and forget: the lab's copies of the mirror's content."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from neuromirror.api.inputs import PathLike, spec_of, specs_of
from neuromirror.api.reading import Reading
from neuromirror.dataset.versions import Version, select_versions
from neuromirror.errors import UserError
from neuromirror.spec import Spec
from neuromirror.store.base import Store

if TYPE_CHECKING:
    from neuromirror.account.backup_model import Backup
    from neuromirror.dataset.mirror import Forgotten
    from neuromirror.keep.stores import StoresRun
    from neuromirror.restore.report import RestoreReport
    from neuromirror.restore.targets import DirTarget, S3Target
    from neuromirror.verify.report import VerifyReport


class Keeping(Reading):
    """The verbs that keep, check, restore and forget, on top of the reading ones (verify reads a version)."""

    # -- copies of the content ----------------------------------------------------------------------
    def forget(self, specs: Union[str, Spec, Sequence[Union[str, Spec]]], *, dataset: bool = False) -> list[Forgotten]:
        """Remove every index row of the sources ``specs`` name (patterns too), each under its lock (``neuromirror
        forget``); ``dataset``: also their datasets, from the root superdataset and the disk."""
        from neuromirror.index.lookup import sources_matching

        chosen = [spec_of(s, allow_version=False) for s in specs_of(specs)]
        return [self.datasets.forget(source, dataset=dataset) for source in sources_matching(self.index, chosen)]

    def backup(
        self, specs: Union[str, Sequence[str]] = (), *, expire_after: Optional[dict[str, float]] = None
    ) -> Backup:
        """Per source (every one, or those ``specs`` name: globs) and store: the objects and bytes the recorded
        versions hold against those each store holds, the oldest version not whole there, what the archive deletes
        within 30 days that no store holds, each store's last verification (``status --backup``, ``/backup/``);
        from the index alone.  ``expire_after``: SPEC -> seconds, the archive's noncurrent-version expiry."""
        from neuromirror.account.backup import backup

        chosen = [specs] if isinstance(specs, str) else list(specs)
        return backup(self.index, chosen or None, expire_after=expire_after)

    def keep(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        to: Union[PathLike, Store, Sequence[Union[PathLike, Store]]],
        *,
        copies: Optional[int] = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        max_file_size: Optional[int] = None,
        budget: Optional[int] = None,
        jobs: int = 4,
        all_versions: bool = False,
        locks: Sequence[PathLike] = (),
        progress: bool = False,
        from_stores: Sequence[Union[PathLike, Store]] = (),
        prune: bool = False,
        min_free: Optional[object] = None,
    ) -> StoresRun:
        """Copy the content of the versions ``specs`` name into the store(s) ``to`` (a directory, or
        ``s3://BUCKET[/PREFIX]``) and record them where every clone looks (``neuromirror keep``); ``locks``: the
        versions lock files name, too.
        ``copies``: the verified copies wanted across the stores (None: the count recorded before).
        ``from_stores``: copy from these stores only, with no request to the archive (``keep --from``).
        ``prune``: the versions of these sources a store was given and ``specs`` leave out are dropped from it,
        with the keys no kept version needs (``keep --prune``, :mod:`neuromirror.keep.prune`).
        ``min_free``: the free space a directory store must keep (as the service's ``min_free`` option)."""
        from neuromirror.keep.stores import keep_into
        from neuromirror.keep.versions import KeepOptions
        from neuromirror.store.location import open_store, store_name

        given: list[Any] = list(to) if isinstance(to, (list, tuple)) else [to]
        stores = [open_store(store_name(str(t))) if isinstance(t, (str, os.PathLike)) else t for t in given]
        if len({s.url for s in stores}) != len(stores):
            raise UserError("the same store is named twice")
        sources = [open_store(str(t)) if isinstance(t, (str, os.PathLike)) else t for t in from_stores]
        if {s.url for s in sources} & {s.url for s in stores}:
            raise UserError("a store cannot be kept into from itself: name another with --from")
        if copies is not None and copies < 1:
            raise UserError("copies must be at least 1")
        options = KeepOptions(
            include=list(include),
            exclude=list(exclude),
            max_file_size=max_file_size,
            budget=budget,
            jobs=jobs,
            all_versions=all_versions,
            progress=progress,
            from_stores=sources,
            prune=prune,
            min_free=min_free,
        )
        targets = select_versions(self.index, specs_of(specs), options.all_versions, root=self.root)
        if locks:
            from neuromirror.keep.lock import lock_targets

            seen = {t.id for t in targets}
            targets += [t for t in lock_targets(self.datasets, [str(x) for x in locks]) if t.id not in seen]
        return keep_into(self.datasets, stores, targets, options, copies)

    def verify(
        self,
        spec: Union[str, Spec, Version],
        *,
        content: bool = False,
        sample: Optional[int] = None,
        kept: bool = False,
        strict: bool = False,
        store: Union[PathLike, Store, None] = None,
        jobs: int = 4,
        seed: Optional[int] = None,
        archive: bool = False,
        options: Optional[dict[str, Any]] = None,
        timeout: float = 60.0,
        allow_ip: Optional[str] = None,
        content_cache: Optional[dict[str, Any]] = None,
        progress: bool = False,
    ) -> VerifyReport:
        """Check one version (``spec``, or a :class:`Version` as :meth:`versions` gives it): its tree against the
        index and the git-annex branch; ``content``: every file's bytes read back (from the archive, or any store
        the mirror knows) and hashed against its key (``sample``: N random keys, ``seed`` repeatable); ``kept``:
        every annexed file in ``store`` (a directory, ``s3://...`` or a store); ``archive``: the version listed at
        the archive again (``options``: the sources' options, as ``sync`` takes them); ``content_cache``: a dict
        shared between calls, so that versions sharing content download it once (``neuromirror verify``).
        ``.ok``, ``.to_json()``."""
        from neuromirror.store.location import open_store, store_name
        from neuromirror.verify.version import verify_version

        v = spec if isinstance(spec, Version) else self.version(spec)
        opened = open_store(store_name(str(store))) if isinstance(store, (str, os.PathLike)) else store
        return verify_version(
            self.datasets,
            v.source,
            v.row,
            content=content,
            sample=sample,
            seed=seed,
            jobs=jobs,
            progress=progress,
            timeout=timeout,
            archive=archive,
            options=options,
            content_cache=content_cache,
            allow_ip=allow_ip,
            store=opened,
            kept=kept,
            strict=strict,
        )

    def restore(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        to: Union[PathLike, S3Target, DirTarget],
        *,
        dry_run: bool = False,
        force: bool = False,
        jobs: int = 4,
        stores: Optional[Sequence[str]] = None,
        each: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> RestoreReport:
        """Write the kept content of the versions ``specs`` name back in the archive's own key layout at
        ``to`` (``s3://BUCKET[/PREFIX]`` or a directory, checked here; or a target already opened and checked,
        :func:`neuromirror.restore.targets.open_target`); ``dry_run``: decide only, ``each`` called with each
        object it would write; ``stores``: read only from these (URLs or UUIDs) (``neuromirror restore``)."""
        from neuromirror.restore.report import RestoreReport
        from neuromirror.restore.run import RestoreOptions, plan_iter, restore_objects
        from neuromirror.restore.targets import open_target

        if isinstance(to, (str, os.PathLike)):
            target = open_target(os.fspath(to))
            target.check()
        else:
            target = to
        report = RestoreReport(target.url, dry_run=dry_run, force=force)
        options = RestoreOptions(
            dry_run=dry_run, force=force, jobs=jobs, stores=None if stores is None else list(stores), each=each
        )
        versions = select_versions(self.index, specs_of(specs), root=self.root)
        restore_objects(self.datasets, plan_iter(self.datasets, versions, report), target, options, report)
        return report
