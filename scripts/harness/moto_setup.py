#!/usr/bin/env python3
"""Sets up the moto server: an IAM user whose policy allows listing one bucket and not
another, a role that user may assume, and access keys. moto only starts checking
credentials after INITIAL_NO_AUTH_ACTION_COUNT unauthenticated calls, which these are.
Prints KEY=VALUE lines for the harness's env file."""
import json
import sys

import boto3

endpoint, allowed, denied = sys.argv[1], sys.argv[2], sys.argv[3]
common = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **common)
s3 = boto3.client("s3", **common)

s3.create_bucket(Bucket=allowed)
s3.put_object(Bucket=allowed, Key="reports/daily.csv", Body=b"id,total\n1,42\n")
s3.create_bucket(Bucket=denied)
user_arn = iam.create_user(UserName="probe-user")["User"]["Arn"]
policy = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": [f"arn:aws:s3:::{allowed}", f"arn:aws:s3:::{allowed}/*"]},
        {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": "*"},
    ],
}
iam.put_user_policy(UserName="probe-user", PolicyName="probe", PolicyDocument=json.dumps(policy))
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="probe-reader", AssumeRolePolicyDocument=json.dumps(trust))
iam.put_role_policy(RoleName="probe-reader", PolicyName="read", PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="probe-user")["AccessKey"]
print(f"AP_MOTO_ACCESS_KEY={key['AccessKeyId']}")
print(f"AP_MOTO_SECRET_KEY={key['SecretAccessKey']}")
print(f"AP_MOTO_ROLE_ARN={role['Role']['Arn']}")
