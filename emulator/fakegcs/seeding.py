"""Checking a ``--data`` seed directory before anything is uploaded.

Layout: ``ROOT/<bucket>/<path...>``; each top-level directory is a bucket, each file below it
an object named by its relative path. Invariants: the whole tree is checked before the first
upload (so a refused tree changes nothing); a symlink leading outside ``ROOT`` is refused
unless ``follow_symlinks`` (then what it points to is copied in); symlink loops are refused;
every object name must be one GCS accepts (:func:`emulator.fakegcs.names.name_error`).
"""

from __future__ import annotations

import os
from pathlib import Path


def seed_plan(
    root: os.PathLike | str, *, follow_symlinks: bool = False
) -> list[tuple[str, list[tuple[str, Path]]]]:
    """``[(bucket, [(object name, file), ...]), ...]`` for a seed directory, checked whole.

    See :meth:`Backend.seed_from_dir` for the rules; ``ValueError`` names the first violation.
    """
    from emulator.fakegcs.names import BUCKET_RULE, bucket_error, name_error

    rootp = Path(root)
    if not rootp.is_dir():
        raise ValueError(f"seed directory {root} does not exist or is not a directory")
    real_root = rootp.resolve()
    stray = [p.name for p in rootp.iterdir() if not p.is_dir()]
    if stray:
        raise ValueError(
            f"seed directory {root} must contain only bucket directories; found files: "
            + ", ".join(sorted(stray)[:5])
        )
    plan: list[tuple[str, list[tuple[str, Path]]]] = []
    for bucket_dir in sorted(rootp.iterdir()):
        if bucket_error(bucket_dir.name):  # GCS would answer 400 to every upload into it
            raise ValueError(
                f"seed directory {root}: {bucket_dir.name!r} is not a valid GCS bucket name: "
                f"{BUCKET_RULE}"
            )
        _check_link(rootp, real_root, bucket_dir, follow_symlinks)
        files: list[tuple[str, Path]] = []
        ancestors: dict[str, frozenset[Path]] = {str(bucket_dir): frozenset()}
        for dirpath, dirnames, filenames in os.walk(bucket_dir, followlinks=True):
            here = Path(dirpath)
            real = here.resolve()
            chain = ancestors.pop(dirpath, frozenset())
            if real in chain:
                raise ValueError(f"seed directory {root}: symlink loop at {here}")
            for d in dirnames:
                ancestors[os.path.join(dirpath, d)] = chain | {real}
            for name in sorted(dirnames) + sorted(filenames):
                _check_link(rootp, real_root, here / name, follow_symlinks)
            dirnames.sort()
            for name in sorted(filenames):
                p = here / name
                if not p.is_file():
                    continue
                rel = p.relative_to(bucket_dir).as_posix()
                problem = name_error(rel)
                if problem:
                    raise ValueError(f"seed directory {root}: {p}: {problem}")
                files.append((rel, p))
        plan.append((bucket_dir.name, sorted(files)))
    return plan


def _check_link(root: Path, real_root: Path, p: Path, follow_symlinks: bool) -> None:
    if p.is_symlink() and not follow_symlinks:
        target = p.resolve()
        if real_root != target and real_root not in target.parents:
            raise ValueError(
                f"seed directory {root}: symlink {p} leads outside the tree "
                "(pass --data-follow-symlinks to copy what it points to)"
            )
