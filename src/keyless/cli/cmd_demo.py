"""``keyless demo``: the whole story on the local stack, each stage checked, in under a minute."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from keyless.cli.console import Console
from keyless.cli.main import EXIT_ERROR, EXIT_NEGATIVE, EXIT_OK, Subparsers

_EPILOG = """\
Stages, each checked (nothing outside a temporary folder is touched, no network beyond
127.0.0.1):
  stack      start the local stack: a Bitbucket workspace's OIDC issuer and AWS (IAM, STS, S3)
             that checks tokens and trust policies as AWS does
  provision  `keyless provision` creates the identity provider and a role pinned to repository
             site's production deployment environment, with S3 deploy permissions; the trust
             policy is shown
  deploy     bitbucket/bitbucket-pipelines.yml runs through `keyless local pipeline`
             as repository site: its atlassian/aws-s3-deploy step deploys the site
  whoami     `keyless whoami` in the production step shows the assumed-role ARN
  refused    the same pipeline from another repository of the workspace: STS refuses the step
  doctor     `keyless doctor` in that step names the trust condition that refused it
  unchanged  the deploy again: 0 objects sent

With --ci github the story is GitHub Actions': the identity provider and a role pinned to
octo-org/site's production environment; github/deploy.yml's deploy job run through `keyless
local workflow` as octo-org/site (its `pip install keyless` step skipped, setup-python asking for
the Python running keyless); the same job as octo-org/other-site, refused by STS, its `if:
failure()` doctor step run; the job again, 0 objects sent.

The story goes to standard error; the summary table (or with --json one document with `ok` and
each stage's `stage`, `passed`, `detail` and `seconds`) to standard output.

Exit codes: 0 every stage passed; 1 an expectation did not hold; 2 a stage could not run (the
demo stops there; `error` says why).
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole story on the local stack: provision, deploy, refuse, diagnose",
        description="Provision, deploy from a Bitbucket pipeline, be refused, learn why: locally.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--examples",
        metavar="DIR",
        type=Path,
        help="a folder with bitbucket/bitbucket-pipelines.yml (or github/deploy.yml) and"
        " bitbucket/site/ (default: the copy shipped with keyless, the same as examples/)",
    )
    parser.add_argument(
        "--ci",
        choices=("bitbucket", "github"),
        default="bitbucket",
        help="whose story: a Bitbucket pipeline (default) or a GitHub Actions job",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported here: the local stack is needed by this command only.
    from keyless.local import demo, demo_github

    stages: Sequence[tuple[str, str]]
    if args.ci == "github":
        examples = demo.find_examples(args.examples, needs=demo_github.WORKFLOW_FILE)
        result = demo_github.run_github_demo(examples=examples, log=console.stderr, env=console.env)
        stages = demo_github.GITHUB_STAGES
    else:
        examples = demo.find_examples(args.examples)
        result = demo.run_demo(examples=examples, log=console.stderr, env=console.env)
        stages = demo.STAGES
    if args.json:
        console.emit_json(result.to_json())
    else:
        console.out("")
        width = max(len(key) for key, _ in stages)
        for stage in result.stages:
            mark = "ok" if stage.passed else "FAILED"
            line = f"{stage.key:<{width}}  {mark:<6}  {stage.seconds:5.1f} s  {stage.detail}"
            console.out(line)
        verdict = "every stage passed" if result.ok else "a stage FAILED"
        if result.error is not None:
            verdict = f"stopped: {result.error}"
        console.out(f"keyless demo: {verdict} in {result.seconds:.1f} s")
    if result.error is not None:
        return EXIT_ERROR
    return EXIT_OK if result.ok else EXIT_NEGATIVE
