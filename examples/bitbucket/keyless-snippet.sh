# keyless' replacement for recipe-snippet.sh, for the same step: safe to run any number of times.
# The credentials go into this shell only: no file is written or appended, no profile changed.
# A step without `oidc: true`, or a token the role refuses, stops here with the reason.
credentials="$(keyless assume --role-arn "${AWS_OIDC_ROLE_ARN}")"
eval "$credentials" && unset credentials
aws sts get-caller-identity
aws s3 cp site/index.html "s3://${S3_BUCKET}/index.html"
