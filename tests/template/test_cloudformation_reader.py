"""The tests' CloudFormation reader (tests/support/cloudformation.py) checked against cfn-lint on the same template:
for each parameter set the template tests use, every condition must be what cfn-lint's condition solver decides
once the parameters are pinned to their values."""

from __future__ import annotations

import copy
from typing import Any

from cfnlint.template import Template

from tests.support.cloudformation import REGION, TEMPLATE_PATH, Stack, load_template, translate
from tests.template.test_template import PARAMETER_SETS, every_parameter_set


def pinned(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The template with each parameter allowed only its value, so that cfn-lint knows what each Equals compares."""
    template = copy.deepcopy(template)
    for name, value in parameters.items():
        template["Parameters"][name].update(Default=value, AllowedValues=[value])
    return template


@every_parameter_set
def test_every_condition_is_what_cfn_lint_decides(parameter_set: str) -> None:
    translated = translate(load_template(TEMPLATE_PATH), PARAMETER_SETS[parameter_set])
    stack = Stack(translated, PARAMETER_SETS[parameter_set])
    solver = Template(str(TEMPLATE_PATH), pinned(translated, stack.parameters), [REGION]).conditions
    names = sorted(translated["Conditions"])
    assert names, "the template has no conditions to check"
    # One condition at a time: cfn-lint's solver decides each alone; it is not asked to combine them all.
    decided = {name: list(solver.build_scenarios({name: {True, False}})) for name in names}
    assert decided == {name: [{name: stack.condition(name)}] for name in names}


def test_the_check_can_tell_a_wrong_answer() -> None:
    """cfn-lint really decides: pinned to other values, it disagrees with the reader's defaults."""
    translated = translate(load_template(TEMPLATE_PATH), {})
    defaults = Stack(translated, {})
    flipped = dict(defaults.parameters, EnableCanary="false" if defaults.condition("CanaryEnabled") else "true")
    solver = Template(str(TEMPLATE_PATH), pinned(translated, flipped), [REGION]).conditions
    (scenario,) = solver.build_scenarios({"CanaryEnabled": {True, False}})
    assert scenario == {"CanaryEnabled": not defaults.condition("CanaryEnabled")}
