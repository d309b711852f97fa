# The web identity setup that Bitbucket pipelines copy from one another, as it is copied: a
# script step with `oidc: true`, AWS_OIDC_ROLE_ARN and S3_BUCKET set. Kept here to show what goes
# wrong; keyless-snippet.sh is its replacement.
#
# What goes wrong:
#   - `>>` appends: a second run in the same home (a re-run, a cached ~/.aws, the lines sourced
#     twice) leaves two tokens in the file, which botocore sends as one: STS refuses it;
#   - after `chmod 400`, a user other than root cannot append at all ("Permission denied");
#   - the file is created readable (default umask) and made private only afterwards;
#   - `echo` adds a newline that botocore sends along with the token;
#   - `aws configure set` changes the default profile for everything that runs after it;
#   - copies without the `mkdir -p` fail in a fresh image: ~/.aws does not exist yet.
mkdir -p ~/.aws
echo "${BITBUCKET_STEP_OIDC_TOKEN}" >> ~/.aws/web-identity-token
chmod 400 ~/.aws/web-identity-token
aws configure set web_identity_token_file ~/.aws/web-identity-token
aws configure set role_arn "${AWS_OIDC_ROLE_ARN}"
unset AWS_ACCESS_KEY_ID; unset AWS_SECRET_ACCESS_KEY
aws sts get-caller-identity
aws s3 cp site/index.html "s3://${S3_BUCKET}/index.html"
