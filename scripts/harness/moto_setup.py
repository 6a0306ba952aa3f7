#!/usr/bin/env python3
"""Sets up the moto server: an IAM user whose policy allows listing one bucket and not
another, and reading the probe's secrets in Secrets Manager and SSM but not another
team's; a role that user may assume, and access keys. A third bucket is public (its
policy lets anyone read it) and a fourth public the old way (its ACL is public-read), for
credential hygiene. moto only starts checking
credentials after INITIAL_NO_AUTH_ACTION_COUNT unauthenticated calls, which these 16 are
(scripts/servers.sh sets the count: keep them equal). Prints KEY=VALUE lines for the
harness's env file."""
import json
import sys

import boto3

endpoint, allowed, denied, public = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
common = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **common)
s3 = boto3.client("s3", **common)
sm = boto3.client("secretsmanager", **common)
ssm = boto3.client("ssm", **common)

s3.create_bucket(Bucket=allowed)
s3.put_object(Bucket=allowed, Key="reports/daily.csv", Body=b"id,total\n1,42\n")
s3.create_bucket(Bucket=denied)
s3.create_bucket(Bucket=public)
anyone_reads = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{public}/*"}]}
s3.put_bucket_policy(Bucket=public, Policy=json.dumps(anyone_reads))
public_acl = public + "-acl"
s3.create_bucket(Bucket=public_acl, ACL="public-read")
user_arn = iam.create_user(UserName="probe-user")["User"]["Arn"]
policy = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": [f"arn:aws:s3:::{allowed}", f"arn:aws:s3:::{allowed}/*", f"arn:aws:s3:::{public}", f"arn:aws:s3:::{public_acl}"]},
        # What credential hygiene asks, read-only: whether a bucket is public, the key's age.
        {"Effect": "Allow", "Action": ["s3:GetBucketPolicyStatus", "s3:GetBucketAcl"],
         "Resource": [f"arn:aws:s3:::{allowed}", f"arn:aws:s3:::{public}", f"arn:aws:s3:::{public_acl}"]},
        {"Effect": "Allow", "Action": ["iam:ListAccessKeys"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": "*"},
        # moto checks these actions against "*" only: the denied case is another user.
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameter"], "Resource": "*"},
    ],
}
iam.put_user_policy(UserName="probe-user", PolicyName="probe", PolicyDocument=json.dumps(policy))
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="probe-reader", AssumeRolePolicyDocument=json.dumps(trust))
iam.put_role_policy(RoleName="probe-reader", PolicyName="read", PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="probe-user")["AccessKey"]
import os

bearer = os.environ["AP_BEARER_TOKEN"]
sm.create_secret(Name="probe/api-token", SecretString=bearer)
sm.create_secret(Name="probe/db", SecretString=json.dumps({"username": os.environ["AP_PG_USER"], "password": os.environ["AP_PG_PASSWORD"]}))
ssm.put_parameter(Name="/probe/api-token", Value=bearer, Type="SecureString")
# A user with no policy at all: every read of a secret is denied to it.
iam.create_user(UserName="no-secrets-user")
other = iam.create_access_key(UserName="no-secrets-user")["AccessKey"]
print(f"AP_MOTO_ACCESS_KEY={key['AccessKeyId']}")
print(f"AP_MOTO_SECRET_KEY={key['SecretAccessKey']}")
print(f"AP_MOTO_ROLE_ARN={role['Role']['Arn']}")
print(f"AP_MOTO_NOSECRETS_ACCESS_KEY={other['AccessKeyId']}")
print(f"AP_MOTO_NOSECRETS_SECRET_KEY={other['SecretAccessKey']}")
