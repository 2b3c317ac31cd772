"""The transaction verbs: mkfs, rmfs, list, transaction, publish, abort, unmount-all."""

from __future__ import annotations

import json
import os
import pwd
import sys
import time
from collections.abc import Sequence

from . import mounts
from .errors import NOT_IN_TRANSACTION, USAGE, FakeError
from .faults import injected
from .options import Parsed, Spec, one_repository, parse
from .paths import check_name, clean, kind, parent, split_repo, under
from .report import Report
from .session import Session, leases, listing, session
from .state import Repo, RepoMeta, names, save
from .tree import remove
from .views import view

NEW_REPOSITORY = "new_repository"


def confirm(question: str) -> bool:
    print(question, end="", flush=True)
    return sys.stdin.readline().strip() in ("y", "Y")


def mkfs(report: Report, args: Sequence[str]) -> None:
    parsed = parse(Spec(valued={"-o": "owner"}), "mkfs", args)
    name = one_repository("mkfs", parsed)
    check_name(name)
    report.repo = name
    repo = Repo.at(report.config, name)
    if repo.exists():
        raise FakeError(f"Repository {name} already exists")
    if repo.root.is_dir() and any(repo.root.iterdir()):
        raise FakeError(f"{repo.root} is not empty (left over from an earlier repository?)")
    owner = _owner(parsed.value("owner"))
    repo.rdonly.mkdir(parents=True)
    (repo.rdonly / NEW_REPOSITORY).write_text(f"New CernVM-FS repository for {name}\n")
    if os.geteuid() == 0:
        for path in (repo.rdonly, repo.rdonly / NEW_REPOSITORY):
            os.chown(path, *owner)
    meta = RepoMeta(name, 0, owner, mounts=not report.config.no_mounts)
    save(repo, meta)
    view(repo, meta).settle(meta)
    print(f"Created repository {name} at {repo.root}")


def _owner(user: str | None) -> tuple[int, int]:
    if user is None:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise FakeError(f"No user {user}", USAGE) from None
    return entry.pw_uid, entry.pw_gid


def rmfs(report: Report, args: Sequence[str]) -> None:
    parsed = parse(Spec(flags={"-f": "force"}), "rmfs", args)
    name = one_repository("rmfs", parsed)
    check_name(name)
    report.repo = name
    repo = Repo.at(report.config, name)
    if not repo.exists():
        raise FakeError(f"CernVM-FS error: repository {name} not found")
    question = f"You are about to WIPE OUT THE CERNVM-FS REPOSITORY {name}!  Are you sure (y/N)? "
    if not parsed.has("force") and not confirm(question):
        return
    mounts.unmount(repo.root)
    if repo.root.is_dir() and json.loads(repo.meta_file.read_text())["mounts"]:
        repo.root.rmdir()  # an empty mount point; never recurse into what might be mounted
    remove(repo.root)
    remove(repo.home)
    report.repo = None


def list_repositories(report: Report, args: Sequence[str]) -> None:
    """`<name> (stratum0 / local)`, with ` - in transaction` inside the brackets like cvmfs."""
    if args:
        raise FakeError("Command list: takes no arguments", USAGE)
    storage = "gw" if report.config.gateway else "local"
    for name in names(report.config):
        with session(report.config, name) as current:
            held = current.meta.transactions
            busy = " - in transaction" if held else ""
            # cvmfs chroots the read-only mount to the clone's new catalog: not the
            # published revision, which `list` reports as unhealthy
            if any(t.template for t in held):
                busy += " - unhealthy"
            print(f"{name} (stratum0 / {storage}{busy})  ")


TRANSACTION = Spec(
    valued={
        "-T": "template",
        "--template": "template",
        "-U": "template-from",
        "--template-from": "template-from",
        "-V": "template-to",
        "--template-to": "template-to",
    }
)


def transaction(report: Report, args: Sequence[str]) -> None:
    parsed = parse(TRANSACTION, "transaction", args)
    name, path = split_repo(one_repository("transaction", parsed))
    report.repo = name
    pair = _template(parsed)
    with session(report.config, name) as current:
        if report.fires("FAKE_CVMFS_FAIL_TRANSACTION"):
            raise injected("FAKE_CVMFS_FAIL_TRANSACTION", "Could not open a transaction")
        if report.fires("FAKE_CVMFS_FOREIGN_TRANSACTION"):
            current.open(path, "foreign")
        current.check_free(path)
        current.check_lease_parent(path)
        if pair is None:
            current.open(path, "transaction")
            return
        source, destination = pair
        _check_template(current, path, source, destination)
        print(f"CernVM-FS: cloning template {source} --> {destination} ... ", end="")
        try:
            current.view.clone(source, destination)
            current.open(path, "transaction", pair)
        except BaseException:
            current.view.discard(destination)
            raise
        print("[done]")


def _template(parsed: Parsed) -> tuple[str, str] | None:
    """-T from=to (also one argv "-T from=to") or -U from -V to. Like cvmfs_publish, one
    template per transaction: of several -T the last counts."""
    values = parsed.values("template")
    pair = None
    if values:
        source, equals, destination = values[-1].partition("=")
        if not equals or "=" in destination:
            raise FakeError(f"invalid syntax for --template parameter: {values[-1]}", USAGE)
        pair = (clean(source), clean(destination))
    origin, target = parsed.value("template-from"), parsed.value("template-to")
    if (origin is None) != (target is None) or (origin is not None and pair):
        raise FakeError("invalid parameter combination for templates", USAGE)
    if origin is not None and target is not None:
        pair = (clean(origin), clean(target))
    return pair


def _check_template(current: Session, lease: str, source: str, destination: str) -> None:
    """The checks of cvmfs' CloneTree, plus: the destination must lie inside the lease."""
    published = current.repo.rdonly
    problem = None
    if not source or not destination:
        problem = "clone tree from or to root impossible"
    elif under(destination, source):
        problem = f"cannot clone tree into itself or a sub directory of '/{source}'"
    elif kind(published, source) != "dir":
        problem = f"path '/{source}' cannot be found or is not a directory"
    elif kind(published, destination) != "missing":
        problem = f"destination '/{destination}' exists"
    elif kind(published, parent(destination)) != "dir":
        problem = f"destination '/{destination}' not on a known path"
    elif current.config.gateway and not under(destination, lease):
        problem = f"destination '/{destination}' is outside the lease on /{lease}"
    if problem:
        raise FakeError(f"CernVM-FS transaction error: {problem}, aborting")


PUBLISH = Spec(valued={"-m": "message", "-a": "tag", "-D": "description"})


def publish(report: Report, args: Sequence[str]) -> None:
    parsed = parse(PUBLISH, "publish", args)
    name, path = split_repo(one_repository("publish", parsed))
    report.repo = name
    with session(report.config, name) as current:
        txn = current.select(path)
        if report.fires("FAKE_CVMFS_FAIL_PUBLISH"):
            raise injected("FAKE_CVMFS_FAIL_PUBLISH", "Synchronization failed")
        if report.config.gateway:
            outside = current.outside_leases()
            if outside:
                raise FakeError(f"write outside lease {name}/{txn.path}: {listing(outside)}")
        scope = current.scope(txn)
        report.upper_files, report.upper_bytes = current.view.usage(scope, txn.template)
        current.view.check_publishable(scope)
        current.view.offline()
        time.sleep(float(report.config.env.get("FAKE_CVMFS_SLOW_PUBLISH") or 0))
        clone = txn.template[1] if txn.template else None
        current.view.publish(scope, clone)
        current.close(txn, discard=False)
        current.save(current.meta.published(scope, "publish"))
        print(f"Published revision {current.meta.revision} of {name}")


def abort(report: Report, args: Sequence[str]) -> None:
    parsed = parse(Spec(flags={"-f": "force"}), "abort", args)
    name, path = split_repo(one_repository("abort", parsed))
    report.repo = name
    with session(report.config, name) as current:
        if not current.meta.transactions:
            raise FakeError("", NOT_IN_TRANSACTION)  # cvmfs_server abort says nothing: 22
        txn = current.select(path)
        question = (
            "You are about to DISCARD ALL CHANGES OF THE CURRENT TRANSACTION for "
            f"{name}!  Are you sure (y/N)? "
        )
        if not parsed.has("force") and not confirm(question):
            return
        current.close(txn, discard=True)
        print(f"Aborted transaction on {name}" + (f" (lease /{txn.path})" if txn.path else ""))
        if current.meta.transactions:
            print(f"still open: {leases(current.meta)}")


def unmount_all(report: Report, args: Sequence[str]) -> None:
    """Fake-only cleanup: unmount everything under FAKE_CVMFS_PREFIX."""
    if args:
        raise FakeError("Command unmount-all: takes no arguments", USAGE)
    for point in mounts.unmount_under(report.config.prefix):
        print(f"unmounted {point}")
