"""stackmeta publish RELEASE --repository-url URL (or --repository NAME): build, check, upload with
twine, read back."""

from __future__ import annotations

import argparse
from typing import Any

from stackmeta.commands import common
from stackmeta.commands.build import add_project_options, project_options
from stackmeta.console import Output
from stackmeta.errors import PublishError, UsageError
from stackmeta.package import metapackage, pipeline, publish
from stackmeta.package.pipeline import publish_new
from stackmeta.resolve.nearest import load_resolved


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "publish", parents=[common],
        help="upload a release's metapackage with twine, skipping what is there, then verify",
        description=(
            "Build the metapackage of RELEASE (byte-reproducible, so the same bytes as 'stackmeta build') "
            "and upload it with twine. Credentials come the way twine takes them: TWINE_USERNAME and "
            "TWINE_PASSWORD, keyring, or the .pypirc section named by --repository (a user name and "
            "password written in --repository-url are used for the upload and shown nowhere). Files "
            "already on the index with the same sha256 are skipped; one there with another sha256 stops "
            "the publish. What is uploaded is a private copy of the files as built (checked against the "
            "build's sha256); afterwards every file is downloaded back from the index and its bytes hashed. "
            "A metapackage with no requirements, or leaving out more than "
            f"{metapackage.MAX_LEFT_OUT:.0%} of the release's packages from PyPI, is refused (--force)."
        ),
    )
    p.add_argument("release", nargs="?", help="lock name, e.g. CMSSW_14_0_0 (or --new)")
    p.add_argument("--new", action="store_true",
                   help="every record in --locks-dir whose files the index does not have yet: build each, "
                        "skip those already there with the same sha256, publish the others")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--repository-url",
                       help="upload URL, e.g. https://upload.pypi.org/legacy/, or http://HOST:PORT/ "
                            "(pypiserver)")
    where.add_argument("--repository", metavar="NAME",
                       help="a section of ~/.pypirc, as twine takes it: twine reads the upload URL and the "
                            "credentials there")
    p.add_argument("--index-url",
                   help="the simple index to read back (default: from the upload URL: PyPI -> "
                        "https://pypi.org/simple; devpi -> its own +simple index, asked from its +api "
                        "page; otherwise <repository-url>/simple, as pypiserver serves it)")
    p.add_argument("--force", action="store_true",
                   help="publish although the release's check has blocking problems the nearest set "
                        "does not answer, or the metapackage has no requirements or leaves out more than "
                        f"{metapackage.MAX_LEFT_OUT:.0%}% of the release's packages from PyPI")
    add_project_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, output: Output) -> int:
    if args.index_url:
        args.index_url = common.index_url(args.index_url)
    if args.repository:
        args.repository_url = publish.pypirc_url(args.repository)
    else:
        args.repository_url = common.repository_url(args.repository_url)
    options = project_options(args)
    if args.new:
        if args.release:
            raise UsageError(f"give a RELEASE ({args.release}) or --new, not both")
        return run_new(args, options, output)
    if not args.release:
        raise UsageError("give a RELEASE, or --new for every record the index does not have yet")
    loaded = load_resolved(args.locks_dir, args.release)
    nearest = loaded.nearest
    built = pipeline.build_loaded(loaded, options, args.out, args.build_dir, force=args.force)
    output.info(f"built {', '.join(p.name for p in built.files)}")
    done = publish.publish(
        publish.built_files(built), nearest, repository_url=args.repository_url, index_url=args.index_url,
        check=loaded.doc.get("check"), force=args.force, repository=args.repository,
        expected=built.project.dependencies,
    )
    if output.json_mode:
        output.json({
            "index_url": done.index_url,
            "uploaded": [{"file": f.filename, "sha256": f.sha256} for f in done.uploaded],
            "skipped": [{"file": f.filename, "sha256": f.sha256} for f in done.skipped],
            "verified": list(done.verified),
        })
        return 0
    for f in done.uploaded:
        output.result(f"uploaded {f.filename}  sha256:{f.sha256}")
    for f in done.skipped:
        output.result(f"skipped {f.filename}: already on the index with the same sha256")
    output.result(f"verified: {done.index_url} serves {len(done.verified)} file(s) with the expected sha256")
    return 0


def run_new(args: argparse.Namespace, options: metapackage.Options, output: Output) -> int:
    done = publish_new(
        args.locks_dir, repository_url=args.repository_url, index_url=args.index_url, options=options,
        out=args.out, build_dir=args.build_dir, force=args.force, repository=args.repository,
        progress=output.progress(),
    )
    if output.json_mode:
        output.json({
            "index_url": done.index_url,
            "published": {name: [f.filename for f in p.uploaded] for name, p in done.published},
            "already": list(done.already),
            "skipped": [{"release": name, "reason": why} for name, why in done.skipped],
            "failed": [{"release": name, "message": message} for name, message in done.failed],
        })
    else:
        for name, message in done.failed:
            output.warn(f"{name}: {message}")
        for name, why in done.skipped:
            output.info(f"{name}: not published: {why}")
        for name, p in done.published:
            output.result(f"{name}: uploaded {', '.join(f.filename for f in p.uploaded)}")
        output.result(f"published {len(done.published)}, already on {done.index_url} {len(done.already)}, "
                      f"skipped {len(done.skipped)}, failed {len(done.failed)}")
    if done.failed and not output.json_mode:
        name, message = done.failed[0]
        raise PublishError(f"{len(done.failed)} releases failed to publish, first {name}: {message}")
    return 1 if done.failed else 0
