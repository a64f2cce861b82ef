"""Read the templates as SAM and CloudFormation do, offline, for the tests and the benchmark: what would be deployed.

``translate`` runs the SAM transform locally (samtranslator, no AWS call). ``Stack`` then plays CloudFormation's
part for one set of parameter values: it evaluates Conditions, drops the resources and outputs they exclude, and
resolves the intrinsic functions. Attributes that only exist once deployed (ARNs, queue URLs, generated names) are
given the shapes AWS documents for them, so that expressions such as ``!Select [1, !Split ["/", RuleArn]]`` are
checked against a realistic value. A reference to a resource the conditions leave out raises, as CloudFormation
would refuse such a template.

Why it exists: the tests need the stack as deployed for given parameters, and no maintained library renders
that. samtranslator stops at the transform; cfn-lint validates every possible scenario but has no public API
that renders one; cloud-radar renders conditions but has no SAM transform.

What it cannot resolve: attributes of resource types that ``Stack._attributes`` does not model, and the intrinsic
functions ``Stack._function`` does not list (``Fn::GetAZs``, ``Fn::ImportValue``, ``Fn::Cidr``, ``Fn::Base64``,
``Fn::Length``, ``Fn::ToJsonString``): both raise TemplateError rather than guess. It does not expand the
``Fn::ForEach`` language extension (sam does that before the transform), look up SSM parameter types (the
parameter's text is used as is) or render nested applications. Pseudo parameters have the fixed values below.

How its faithfulness is checked: the transform is samtranslator's own; the conditions are checked against
cfn-lint's condition solver on the same translated template, for every parameter set of the template tests
(tests/template/test_cloudformation_reader.py); ``sam validate --lint`` and cfn-lint run on the templates themselves
(tests/template/test_template.py). The resolution of intrinsic functions has no independent check of that kind: the
template tests assert the values it gives.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template
from samtranslator.yaml_helper import intrinsics_multi_constructor

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
FORWARDER_PATH = PROJECT_ROOT / "deploy" / "member-forwarder.yaml"
FUNCTION_ID = "DetectorFunction"
EVENT_ID = "LambdaApiCall"
RULE_ID = f"{FUNCTION_ID}{EVENT_ID}"
"""Logical ID SAM gives the EventBridge rule of the function's event."""

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "lambda-crud-detector"
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK_NAME,
    "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()
"""What ``Ref AWS::NoValue`` resolves to; removed from the mapping or list that holds it."""

VENV_BIN = Path(sys.executable).parent
"""The environment's bin directory (not resolved: the interpreter there is a symlink)."""


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that reads ``!Ref``, ``!Sub``... as SAM does, without changing yaml.SafeLoader for everyone."""


_TemplateLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template(path: Path) -> dict[str, Any]:
    """The template as written, intrinsic-function tags turned into their ``{"Fn::X": ...}`` form."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506 (a SafeLoader)


class _NoManagedPolicies:
    """Stands in for the IAM lookup of managed policy ARNs, which the template does not use."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM produces from ``template``, without contacting AWS."""
    sam_template = copy.deepcopy(dict(template))
    for resource in sam_template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # `sam deploy` uploads the code first and puts its S3 location here; the transform requires one.
            resource["Properties"]["CodeUri"] = "s3://artifacts-bucket/detector.zip"
    parameter_values = {**PSEUDO_PARAMETERS, **(parameters or {})}
    # What samtranslator.translator.transform.transform does, with a session that names the Region: the
    # transform asks for one when a template nests an application, and never calls AWS for a local Location.
    to_py27_compatible_template(sam_template, parameter_values)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    translated = translator.translate(
        sam_template, parameter_values=parameter_values, get_managed_policy_map=_NoManagedPolicies().load
    )
    return undo_mark_unicode_str_in_template(translated)


NESTED_STACK_TYPES = ("AWS::CloudFormation::Stack", "AWS::Serverless::Application")


class TemplateError(Exception):
    """The template would be refused by CloudFormation for these parameters."""


class Stack:
    """A CloudFormation template evaluated for one set of parameter values."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        *,
        stack_name: str = STACK_NAME,
        directory: Path = PROJECT_ROOT,
    ) -> None:
        self.template = template
        self.stack_name = stack_name
        self.directory = directory
        """Where a local nested application's Location is read from (the template's own directory)."""
        self._nested: dict[str, Stack] = {}
        declared = template.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {sorted(unknown)}")
        self.parameters: dict[str, str] = {}
        for name, declaration in declared.items():
            value = (parameters or {}).get(name, declaration.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no value")
            self.parameters[name] = str(value)
        self._conditions: dict[str, bool] = {}

    # Conditions -----------------------------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            expression = self.template.get("Conditions", {}).get(name)
            if expression is None:
                raise TemplateError(f"undefined condition {name}")
            self._conditions[name] = self._evaluate_condition(expression)
        return self._conditions[name]

    def _evaluate_condition(self, expression: Any) -> bool:
        if not isinstance(expression, Mapping) or len(expression) != 1:
            raise TemplateError(f"not a condition: {expression!r}")
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self._evaluate_condition(argument[0])
        if function == "Fn::And":
            return all(self._evaluate_condition(item) for item in argument)
        if function == "Fn::Or":
            return any(self._evaluate_condition(item) for item in argument)
        raise TemplateError(f"unsupported condition function {function}")

    # Resources and outputs ------------------------------------------------------------------------------------

    def exists(self, logical_id: str) -> bool:
        owner = self._owner(logical_id)
        if owner is not self:
            return owner.exists(logical_id)
        resource = self.template["Resources"].get(logical_id)
        return resource is not None and ("Condition" not in resource or self.condition(resource["Condition"]))

    @property
    def own_resources(self) -> dict[str, dict[str, Any]]:
        """The resources of this template alone that these parameters create, with their properties resolved."""
        return {
            logical_id: {**resource, "Properties": self.resolve(resource.get("Properties", {}))}
            for logical_id, resource in self.template["Resources"].items()
            if self.exists(logical_id)
        }

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Every resource these parameters create, here and in the nested stacks created, properties resolved."""
        found = self.own_resources
        for nested in self.nested_stacks.values():
            found.update(nested.resources)
        return found

    # Nested applications --------------------------------------------------------------------------------------

    @property
    def nested_stacks(self) -> dict[str, Stack]:
        """The nested stacks these parameters create, by the logical ID of the application that creates them."""
        return {
            logical_id: self.nested(logical_id)
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] in NESTED_STACK_TYPES and self.exists(logical_id)
        }

    def nested(self, logical_id: str) -> Stack:
        """The stack that the nested application ``logical_id`` creates, from its local template."""
        if logical_id not in self._nested:
            resource = self.template["Resources"][logical_id]
            properties = resource["Properties"]
            location = properties.get("TemplateURL", properties.get("Location"))
            if not isinstance(location, str) or "://" in location:
                raise TemplateError(f"{logical_id}: only a local nested template can be read, not {location!r}")
            path = (self.directory / location).resolve()
            parameters = {key: str(value) for key, value in self.resolve(properties.get("Parameters", {})).items()}
            nested = Stack(
                translate(load_template(path), parameters),
                parameters,
                stack_name=generated_name(logical_id, self.stack_name),
                directory=path.parent,
            )
            clashes = set(nested.template["Resources"]) & set(self.template["Resources"])
            if clashes:
                raise TemplateError(f"{location} reuses the parent's logical IDs {sorted(clashes)}")
            self._nested[logical_id] = nested
        return self._nested[logical_id]

    def _owner(self, logical_id: str) -> Stack:
        """This stack if it declares ``logical_id``; else the created nested stack that does; else this stack."""
        if logical_id in self.template["Resources"]:
            return self
        for nested in self.nested_stacks.values():
            owner = nested._owner(logical_id)
            if logical_id in owner.template["Resources"]:
                return owner
        return self

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.resources.items() if value["Type"] == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        owner = self._owner(logical_id)
        if owner is not self:
            return owner.properties(logical_id)
        if not self.exists(logical_id):
            raise TemplateError(f"{logical_id} is not created with these parameters")
        return self.resolve(self.template["Resources"][logical_id].get("Properties", {}))

    @property
    def outputs(self) -> dict[str, Any]:
        return {
            name: self.resolve(output["Value"])
            for name, output in self.template.get("Outputs", {}).items()
            if "Condition" not in output or self.condition(output["Condition"])
        }

    # Intrinsic functions --------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            resolved = [self.resolve(item) for item in value]
            return [item for item in resolved if item is not NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        resolved_items = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved_items.items() if item is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(logical_id, attribute)
        if name == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return self._substitute(text, {key: self.resolve(item) for key, item in variables.items()})
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.resolve(items))
        if name == "Fn::Split":
            separator, text = argument
            return str(self.resolve(text)).split(separator)
        if name == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Fn::FindInMap":
            mapping, first, second = (self.resolve(item) for item in argument)
            return self.template["Mappings"][mapping][first][second]
        raise TemplateError(f"unsupported intrinsic function {name}")

    def _substitute(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name == "AWS::StackName":
            return self.stack_name
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.attribute(name, "Ref")

    def attribute(self, logical_id: str, attribute: str) -> Any:
        """A resource's Ref or attribute, in the form AWS documents for its type."""
        owner = self._owner(logical_id)
        if owner is not self:
            return owner.attribute(logical_id, attribute)
        if logical_id not in self.template["Resources"]:
            raise TemplateError(f"reference to undefined resource {logical_id}")
        if not self.exists(logical_id):
            raise TemplateError(f"reference to {logical_id}, which these parameters do not create")
        resource = self.template["Resources"][logical_id]
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        prefix = f"arn:aws:{{service}}:{REGION}:{ACCOUNT_ID}"

        def name_property(key: str) -> str:
            if key in properties:
                return str(self.resolve(properties[key]))
            return generated_name(logical_id, self.stack_name)

        if kind in NESTED_STACK_TYPES and attribute.startswith("Outputs."):
            outputs = self.nested(logical_id).outputs
            name = attribute.removeprefix("Outputs.")
            if name not in outputs:
                raise TemplateError(f"{logical_id} has no output {name} with these parameters")
            return outputs[name]
        values = self._attributes(kind, logical_id, properties, name_property, prefix)
        if attribute not in values:
            raise TemplateError(f"cannot evaluate {logical_id}.{attribute}: not modelled here for {kind}")
        return values[attribute]

    def _attributes(
        self, kind: str, logical_id: str, properties: Mapping[str, Any], name_property: Any, prefix: str
    ) -> dict[str, Any]:
        """Ref and the attributes of a resource of ``kind``, in the form AWS documents; empty for other types."""
        if kind == "AWS::Events::Rule":
            bus = str(self.resolve(properties.get("EventBusName", "default")))
            rule_name = name_property("Name")
            arn = prefix.format(service="events") + (
                f":rule/{rule_name}" if bus == "default" else f":rule/{bus}/{rule_name}"
            )
            # Ref is the name on the default bus but BUS|NAME on any other (undocumented; see
            # aws-cloudformation/cloudformation-coverage-roadmap#1131), which is why the templates use the ARN.
            return {"Arn": arn, "Ref": rule_name if bus == "default" else f"{bus}|{rule_name}"}
        if kind == "AWS::Events::EventBus":
            bus = name_property("Name")
            return {"Ref": bus, "Name": bus, "Arn": prefix.format(service="events") + f":event-bus/{bus}"}
        if kind == "AWS::SQS::Queue":
            queue = name_property("QueueName")
            return {
                "Ref": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{queue}",
                "QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{queue}",
                "QueueName": queue,
                "Arn": prefix.format(service="sqs") + f":{queue}",
            }
        if kind == "AWS::Logs::LogGroup":
            group = name_property("LogGroupName")
            return {"Ref": group, "Arn": prefix.format(service="logs") + f":log-group:{group}:*"}
        if kind == "AWS::Lambda::Function":
            function = name_property("FunctionName")
            return {"Ref": function, "Arn": prefix.format(service="lambda") + f":function:{function}"}
        if kind == "AWS::IAM::Role":
            role = name_property("RoleName")
            return {"Ref": role, "Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"}
        if kind == "AWS::SecurityHub::Hub":
            hub = prefix.format(service="securityhub") + ":hub/default"
            return {"Ref": hub, "ARN": hub}
        if kind == "AWS::Scheduler::ScheduleGroup":
            group = name_property("Name")
            return {"Ref": group, "Arn": prefix.format(service="scheduler") + f":schedule-group/{group}"}
        if kind == "AWS::Scheduler::Schedule":
            schedule = name_property("Name")
            group = str(self.resolve(properties.get("GroupName", "default")))
            return {"Ref": schedule, "Arn": prefix.format(service="scheduler") + f":schedule/{group}/{schedule}"}
        if kind == "AWS::S3::Bucket":
            bucket = name_property("BucketName").lower()  # generated bucket names are lower case
            return {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
        if kind == "AWS::CloudWatch::Alarm":
            alarm = name_property("AlarmName")
            return {"Ref": alarm, "Arn": prefix.format(service="cloudwatch") + f":alarm:{alarm}"}
        return {}


def generated_name(logical_id: str, stack_name: str = STACK_NAME) -> str:
    """A name of the shape CloudFormation generates: stack, logical ID and a random suffix, at most 64 chars."""
    suffix = "1A2B3C4D5E6F"
    room = 64 - len(suffix) - 2
    head = f"{stack_name}-{logical_id}"[:room]
    return f"{head}-{suffix}"


def policy_statements(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM policy statement in the stack, with the logical ID of the resource holding it."""
    found: list[tuple[str, dict[str, Any]]] = []

    def add(owner: str, document: Mapping[str, Any]) -> None:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            found.append((owner, statement))

    for logical_id, resource in stack.resources.items():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                add(logical_id, policy["PolicyDocument"])
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy"):
            add(logical_id, properties["PolicyDocument"])
        elif resource["Type"] == "AWS::Events::EventBusPolicy" and "Statement" in properties:
            add(logical_id, {"Statement": properties["Statement"]})
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def subprocess_environment() -> dict[str, str]:
    """An environment for sam and cfn-lint: this environment's tools first, a Region, dummy credentials, no
    telemetry, and nothing that could select a real AWS account."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SAM_")) and key not in ("PYTHONPATH", "PYTHONHOME")
    }
    environment.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        SAM_CLI_TELEMETRY="0",
    )
    return environment


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
