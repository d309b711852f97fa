"""The README's examples run with the role `provision --s3-deploy` creates: a snippet that asks
for something the preset does not grant would fail on AWS. The local stack does not evaluate
permission policies (docs/local-stack.md), so this check is what catches such a snippet."""

from __future__ import annotations

import re
from pathlib import Path

from keyless.aws.permissions import S3DeployPreset, S3Location, s3_deploy_policy
from keyless.trust.model import to_document

README = Path(__file__).resolve().parents[3] / "README.md"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: Ways a deploy is told to set an object ACL: the pipe's variable, keyless deploy's flag.
ASKS_FOR_ACL = re.compile(r"(^|\s)(ACL[:=]|--acl\s+\S)", re.MULTILINE)


def _snippets() -> list[str]:
    # Help output (`$ keyless ... --help` blocks) documents flags, it does not use them.
    return [b for b in FENCE.findall(README.read_text()) if not b.startswith("$ keyless")]


def _granted_actions() -> set[str]:
    preset = S3DeployPreset(location=S3Location(bucket="acme-site", prefix="www/"))
    document = to_document(s3_deploy_policy(preset, account_id="123456789012"))
    actions: set[str] = set()
    for statement in document["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_readme_has_snippets_to_check() -> None:
    assert any("keyless pipe aws-s3-deploy" in block for block in _snippets())


def test_no_readme_snippet_sets_an_acl_the_preset_cannot_write() -> None:
    if "s3:PutObjectAcl" in _granted_actions():
        return
    asking = [block for block in _snippets() if ASKS_FOR_ACL.search(block)]
    assert asking == [], "README snippets set an ACL but --s3-deploy grants no s3:PutObjectAcl"


def test_the_acl_pattern_sees_both_spellings() -> None:
    assert ASKS_FOR_ACL.search("      - export LOCAL_PATH=public ACL=private")
    assert ASKS_FOR_ACL.search("          ACL: private")
    assert ASKS_FOR_ACL.search("keyless deploy public/ s3://b/p --acl public-read")
    assert not ASKS_FOR_ACL.search("`ACL`, `CACHE_CONTROL`")
