"""The deployer policies grant every action CloudFormation's resource handlers need for what the templates create.

The actions come from the CloudFormation resource provider schemas that cfn-lint ships: each resource type lists
the permissions its create, read, update and delete handlers call with the deployer's credentials. The resource
types are every type the template can create under any combination of its conditions, after the SAM transform.
When a template gains a resource type, or a schema a permission, the test names what the policy lacks: add it to
the policy, or to EXCLUDED below with the reason it is never called for this stack.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

from tests.support.cloudformation import FORWARDER_PATH, PROJECT_ROOT, TEMPLATE_PATH, load_template, translate

DEPLOYER_POLICY = PROJECT_ROOT / "deploy" / "deployer-policy.json"
FORWARDER_DEPLOYER_POLICY = PROJECT_ROOT / "deploy" / "member-forwarder-deployer-policy.json"
SCHEMA_REGION = "us-east-1"
HANDLERS = ("create", "read", "update", "delete")
"""The handlers a stack's create, update and delete call; ``list`` serves resource import and Cloud Control only."""

# Permissions a schema lists that CloudFormation never calls for these templates, each with why. The schemas list
# the permissions of every property a type has; these belong to properties the templates never set.
EXCLUDED: dict[str, str] = {
    # No function runs in a VPC or mounts a file system.
    "ec2:DescribeSecurityGroups": "no function has a VpcConfig",
    "ec2:DescribeSubnets": "no function has a VpcConfig",
    "ec2:DescribeVpcs": "no function has a VpcConfig",
    "ec2:DescribeNetworkInterfaces": "no function has a VpcConfig, so deletion waits for no network interface",
    "elasticfilesystem:DescribeMountTargets": "no function has a FileSystemConfigs",
    "s3files:ListMountTargets": "no function has a FileSystemConfigs",
    # Nothing names a customer managed KMS key; AWS owned keys need no permission of the caller.
    "kms:*": "no resource sets KmsKeyArn, KmsKeyId or KmsKeyIdentifier",
    # Lambda features the functions do not use.
    "lambda:GetCodeSigningConfig": "no function has a CodeSigningConfigArn",
    "lambda:PutFunctionCodeSigningConfig": "no function has a CodeSigningConfigArn",
    "lambda:DeleteFunctionCodeSigningConfig": "no function has a CodeSigningConfigArn",
    "lambda:GetLayerVersion": "no function has Layers",
    "lambda:PutRuntimeManagementConfig": "no function has a RuntimeManagementConfig",
    "lambda:PutFunctionRecursionConfig": "no function sets RecursiveLoop",
    "lambda:PutFunctionScalingConfig": "no function sets a FunctionScalingConfig",
    "lambda:PassCapacityProvider": "no function names a capacity provider",
    "lambda:AssociateRuntimeAlias": "no function names a runtime alias",
    "lambda:PublishVersion": "no function has AutoPublishAlias or a version resource",
    # Log group features the log groups do not use.
    "logs:PutDataProtectionPolicy": "no log group has a DataProtectionPolicy",
    "logs:PutIndexPolicy": "no log group has a FieldIndexPolicies",
    "logs:DeleteIndexPolicy": "no log group has a FieldIndexPolicies",
    "logs:CreateLogDelivery": "no log group has a delivery",
    "logs:PutBearerTokenAuthentication": "no log group has bearer token authentication",
    "logs:PutLogGroupDeletionProtection": "no log group sets deletion protection",
    "logs:AssociateKmsKey": "no log group has a KmsKeyId",
    "logs:DisassociateKmsKey": "no log group has a KmsKeyId",
    # Account-wide: it would let the deployer open any log group to any service.
    "logs:PutResourcePolicy": "no log group has a ResourcePolicyDocument",
    "logs:DeleteResourcePolicy": "no log group has a ResourcePolicyDocument",
    "s3:REST.PUT.OBJECT": "not an IAM action: the schema names an S3 REST call of a log delivery",
    "firehose:TagDeliveryStream": "no log group delivers to Firehose",
    # The invocation trail's bucket sets encryption, public access block, ownership and a lifecycle, nothing else.
    "s3:PutAccelerateConfiguration": "the invocation trail's bucket sets no AccelerateConfiguration",
    "s3:*AnalyticsConfiguration": "the invocation trail's bucket sets no AnalyticsConfigurations",
    "s3:PutBucketAbac": "the invocation trail's bucket sets no attribute-based access control",
    "s3:PutBucketAcl": "the invocation trail's bucket sets no AccessControl (BucketOwnerEnforced disables ACLs)",
    "s3:PutObjectAcl": "the invocation trail's bucket sets no AccessControl (BucketOwnerEnforced disables ACLs)",
    "s3:*BucketCors": "the invocation trail's bucket sets no CorsConfiguration",
    "s3:PutBucketLogging": "the invocation trail's bucket sets no LoggingConfiguration",
    "s3:PutBucketNotification": "the invocation trail's bucket sets no NotificationConfiguration",
    "s3:PutBucketObjectLockConfiguration": "the invocation trail's bucket sets no ObjectLockConfiguration",
    "s3:PutObjectLockConfiguration": "the invocation trail's bucket sets no ObjectLockConfiguration",
    "s3:*BucketReplication": "the invocation trail's bucket sets no ReplicationConfiguration",
    "s3:PutReplicationConfiguration": "the invocation trail's bucket sets no ReplicationConfiguration",
    "s3:PutBucketVersioning": "the invocation trail's bucket sets no VersioningConfiguration",
    "s3:*BucketWebsite": "the invocation trail's bucket sets no WebsiteConfiguration",
    "s3:PutIntelligentTieringConfiguration": "the invocation trail's bucket sets no IntelligentTieringConfigurations",
    "s3:PutInventoryConfiguration": "the invocation trail's bucket sets no InventoryConfigurations",
    "s3:*MetricsConfiguration": "the invocation trail's bucket sets no MetricsConfigurations",
    "s3:*BucketMetadata*": "the invocation trail's bucket sets no MetadataConfiguration",
    "s3tables:*": "the invocation trail's bucket sets no MetadataTableConfiguration",
    # The invocation trail is a single-account trail without insights.
    "cloudtrail:PutInsightSelectors": "the invocation trail sets no InsightSelectors",
    "organizations:*": "the invocation trail is not an organisation trail (IsOrganizationTrail unset)",
    "iam:CreateServiceLinkedRole": "only an organisation trail needs CloudTrail's service-linked role",
    # Granting these would let the deployer attach any managed policy (AdministratorAccess) to a role it may pass.
    "iam:AttachRolePolicy": "no role has ManagedPolicyArns",
    "iam:DetachRolePolicy": "no role has ManagedPolicyArns",
    "iam:PutRolePermissionsBoundary": "no role has a PermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary": "no role has a PermissionsBoundary",
}

# Types CloudFormation itself handles, with no resource handler of their own (the schema lists no handlers).
NO_HANDLERS: dict[str, str] = {
    "AWS::CloudFormation::WaitConditionHandle": "a CloudFormation-internal pre-signed URL; it calls no service",
}


# The templates' resource types, under every combination of conditions -------------------------------------------


def equality_atoms(expression: Any) -> Iterator[str]:
    """A key for each Fn::Equals in a condition expression: the comparisons its truth rests on."""
    if isinstance(expression, Mapping):
        for key, argument in expression.items():
            if key == "Fn::Equals":
                yield json.dumps(argument, sort_keys=True)
            else:
                yield from equality_atoms(argument)
    elif isinstance(expression, list):
        for item in expression:
            yield from equality_atoms(item)


def evaluate(expression: Any, conditions: Mapping[str, Any], truth: Mapping[str, bool]) -> bool:
    """A condition's value when each Fn::Equals has the truth ``truth`` gives it."""
    ((function, argument),) = expression.items()
    if function == "Fn::Equals":
        return truth[json.dumps(argument, sort_keys=True)]
    if function == "Condition":
        return evaluate(conditions[argument], conditions, truth)
    if function == "Fn::Not":
        return not evaluate(argument[0], conditions, truth)
    if function == "Fn::And":
        return all(evaluate(item, conditions, truth) for item in argument)
    if function == "Fn::Or":
        return any(evaluate(item, conditions, truth) for item in argument)
    raise AssertionError(f"condition function {function} is not understood here: teach evaluate() it")


def reachable_resources(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The resources some combination of the comparisons in Conditions creates (each comparison true or false
    independently: a superset of what parameter values can reach, which errs on the side of more permissions)."""
    conditions = template.get("Conditions", {})
    atoms = sorted(set(equality_atoms(list(conditions.values()))))
    assignments = [dict(zip(atoms, values)) for values in itertools.product((True, False), repeat=len(atoms))]
    satisfiable = {
        name: any(evaluate({"Condition": name}, conditions, truth) for truth in assignments) for name in conditions
    }
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource or satisfiable[resource["Condition"]]
    }


def parameter_variants(template: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """The defaults, then each parameter at each of its other allowed values: SAM reads some parameter values
    while it transforms, so each is given a chance to generate other resources."""
    yield {}
    for name, declaration in template.get("Parameters", {}).items():
        for value in declaration.get("AllowedValues", []):
            if str(value) != str(declaration.get("Default")):
                yield {name: str(value)}


@cache
def cloudformation_templates(path: Path) -> list[dict[str, Any]]:
    """The template as CloudFormation sees it: after the SAM transform, under every parameter variant; then
    likewise each local template it nests, whose resources the same deployer creates."""
    template = load_template(path)
    translated = [translate(template, variant) for variant in parameter_variants(template)]
    found = translated if "Transform" in template else [template]
    nested = {
        (path.parent / resource["Properties"]["TemplateURL"]).resolve()
        for template in found
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    }
    for nested_path in sorted(nested):
        found = found + cloudformation_templates(nested_path)
    return found


def nested_template_paths(path: Path) -> set[Path]:
    return {
        (path.parent / resource["Properties"]["Location"]).resolve()
        for resource in load_template(path)["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Application"
    }


def retained(resource: Mapping[str, Any]) -> bool:
    """Never deleted by CloudFormation: not when the stack is deleted, not when an update replaces it."""
    return resource.get("DeletionPolicy") == "Retain" and resource.get("UpdateReplacePolicy") == "Retain"


def handler_permissions(resource_type: str, handlers: tuple[str, ...]) -> set[str]:
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type).schema
    declared = schema.get("handlers", {})
    return {permission for handler in handlers for permission in declared.get(handler, {}).get("permissions", [])}


def required_actions(path: Path) -> dict[str, set[str]]:
    """Every action a handler calls for the resources the template can create, with the types that need it."""
    needed: dict[str, set[str]] = {}
    for template in cloudformation_templates(path):
        for resource in reachable_resources(template).values():
            resource_type = resource["Type"]
            # A retained resource is never deleted, so its delete handler is never called.
            handlers = tuple(handler for handler in HANDLERS if not (handler == "delete" and retained(resource)))
            for action in handler_permissions(resource_type, handlers):
                needed.setdefault(action, set()).add(resource_type)
    return needed


def resource_types(path: Path) -> set[str]:
    return {
        resource["Type"]
        for template in cloudformation_templates(path)
        for resource in reachable_resources(template).values()
    }


# The policies ---------------------------------------------------------------------------------------------------


def allow_statements(policy_path: Path) -> list[dict[str, Any]]:
    policy = json.loads(policy_path.read_text(encoding="utf-8"))
    statements = policy["Statement"]
    return [statement for statement in statements if statement["Effect"] == "Allow"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(action: str, statements: list[dict[str, Any]]) -> bool:
    """Whether an Allow statement's Action names ``action`` (IAM matches actions case-insensitively)."""
    return any(
        fnmatchcase(action.lower(), pattern.lower())
        for statement in statements
        for pattern in as_list(statement.get("Action", []))
    )


def excluded(action: str) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in EXCLUDED)


POLICIES = [
    pytest.param(TEMPLATE_PATH, DEPLOYER_POLICY, id="detector"),
    pytest.param(FORWARDER_PATH, FORWARDER_DEPLOYER_POLICY, id="member-forwarder"),
]


@pytest.mark.parametrize(("template_path", "policy_path"), POLICIES)
def test_policy_grants_every_handler_permission_of_every_resource_type(template_path: Path, policy_path: Path) -> None:
    statements = allow_statements(policy_path)
    missing = {
        action: sorted(types)
        for action, types in required_actions(template_path).items()
        if not excluded(action) and not granted(action, statements)
    }
    assert not missing, (
        f"{policy_path.name} lacks actions that CloudFormation's handlers call for {template_path.name} "
        f"(action: resource types): {json.dumps(missing, indent=1, sort_keys=True)}. Add them to the policy, "
        f"scoped to the stack's resources, or to EXCLUDED in this test with the reason they are never called."
    )


@pytest.mark.parametrize("template_path", [TEMPLATE_PATH, FORWARDER_PATH])
def test_every_resource_type_has_a_schema_with_handlers(template_path: Path) -> None:
    """A type without handlers needs nothing of the deployer only if CloudFormation handles it itself."""
    silent = {
        resource_type
        for resource_type in resource_types(template_path)
        if not PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type).schema.get("handlers")
    }
    assert silent <= set(NO_HANDLERS), (
        f"types without handler permissions to derive from: {sorted(silent - set(NO_HANDLERS))}"
    )


def test_derivation_sees_the_conditional_and_generated_resources() -> None:
    """The conditions and the SAM transform are read: resources only some parameters create are covered, and
    so are those SAM generates from the function (its rule, permission and invoke configuration)."""
    types = resource_types(TEMPLATE_PATH)
    # Created by the nested applications: the deployer creates their stacks and what they hold.
    assert {"AWS::Scheduler::Schedule", "AWS::SecurityHub::Hub", "AWS::Events::EventBusPolicy"} <= types
    assert {"AWS::CloudTrail::Trail", "AWS::CloudFormation::Stack"} <= types
    assert {"AWS::Lambda::Permission", "AWS::Lambda::EventInvokeConfig"} <= types
    assert not any(resource_type.startswith("AWS::Serverless::") for resource_type in types)
    assert "AWS::IAM::Role" in resource_types(FORWARDER_PATH)


def test_every_nested_template_is_derived() -> None:
    """Each nested application's template is read, whatever conditions create it."""
    nested = nested_template_paths(TEMPLATE_PATH)
    assert len(nested) >= 3
    for path in nested:
        own_types = {resource["Type"] for resource in load_template(path)["Resources"].values()}
        assert own_types <= resource_types(TEMPLATE_PATH), path.name


def test_a_missing_action_is_reported() -> None:
    """The check itself can fail: without its SQS statement the policy lacks what the queues need."""
    statements = [statement for statement in allow_statements(DEPLOYER_POLICY) if statement["Sid"] != "StackQueues"]
    assert not granted("sqs:CreateQueue", statements)
    assert "sqs:CreateQueue" in required_actions(TEMPLATE_PATH)


def test_retained_resources_need_no_delete_permission() -> None:
    """The queues and the hub are retained: the deployer can neither delete a queue of undelivered events nor
    switch Security Hub off."""
    needed = required_actions(TEMPLATE_PATH)
    assert "sqs:DeleteQueue" not in needed
    assert "securityhub:DisableSecurityHub" not in needed
    for policy_path in (DEPLOYER_POLICY, FORWARDER_DEPLOYER_POLICY):
        statements = allow_statements(policy_path)
        assert not granted("sqs:DeleteQueue", statements)
        assert not granted("securityhub:DisableSecurityHub", statements)


@pytest.mark.parametrize("policy_path", [DEPLOYER_POLICY, FORWARDER_DEPLOYER_POLICY])
def test_policy_is_least_privilege(policy_path: Path) -> None:
    statements = allow_statements(policy_path)
    for statement in statements:
        actions = as_list(statement["Action"])
        resources = as_list(statement["Resource"])
        assert "NotAction" not in statement and "NotResource" not in statement
        assert "*" not in actions, statement["Sid"]
        assert not any(action.endswith(":*") for action in actions), f"a whole service in {statement['Sid']}"
        if "*" in resources:
            # Only reads whose API takes no resource ARN.
            assert all(action.split(":", 1)[1].startswith(("Describe", "List", "Get")) for action in actions)
        if "iam:PassRole" in actions:
            assert "*" not in resources and not any(resource.endswith(":role/*") for resource in resources)
            assert statement["Condition"]["StringEquals"]["iam:PassedToService"]


def test_every_exclusion_is_still_listed_by_some_schema() -> None:
    """An exclusion no schema asks for any more is dead weight: remove it."""
    asked = set(required_actions(TEMPLATE_PATH)) | set(required_actions(FORWARDER_PATH))
    unused = [pattern for pattern in EXCLUDED if not any(fnmatchcase(a.lower(), pattern.lower()) for a in asked)]
    assert not unused, f"exclusions no handler permission of the templates matches: {unused}"


MANAGED_POLICY_CHARACTERS = 6144
"""IAM's limit on a customer managed policy, whitespace not counted (IAM User Guide, "IAM and AWS STS quotas")."""


@pytest.mark.parametrize("policy_path", [DEPLOYER_POLICY, FORWARDER_DEPLOYER_POLICY], ids=lambda path: path.name)
def test_policy_fits_in_one_managed_policy(policy_path: Path) -> None:
    compact = json.dumps(json.loads(policy_path.read_text()), separators=(",", ":"))
    assert len(compact) <= MANAGED_POLICY_CHARACTERS, f"{policy_path.name} is {len(compact)} characters"
