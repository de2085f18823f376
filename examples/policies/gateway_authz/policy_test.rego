package gatehouse_test

import rego.v1

import data.gatehouse

contractor := {"kind": "machine", "subject": "apikey:key_c", "scopes": ["mcp"]}

admin := {"kind": "machine", "subject": "apikey:key_a", "scopes": ["mcp", "tools:write"]}

read_only := {"name": "echo", "annotations": {"readOnlyHint": true}}

destructive := {"name": "delete_item", "annotations": {"readOnlyHint": false, "destructiveHint": true}}

call(identity, tool) := {
	"identity": identity,
	"request": {"method": "tools/call", "name": tool.name, "tool": tool.name, "arguments": {}},
	"tool": tool,
}

test_contractor_may_call_read_only_tools if {
	gatehouse.decision.allow with input as call(contractor, read_only)
}

test_contractor_may_not_call_destructive_tools if {
	not gatehouse.decision.allow with input as call(contractor, destructive)
}

test_admin_may_call_destructive_tools if {
	gatehouse.decision.allow with input as call(admin, destructive)
}

test_unknown_tool_definition_is_denied_for_contractors if {
	not gatehouse.decision.allow with input as call(contractor, {"name": "mystery"})
}

test_prompts_are_open if {
	gatehouse.decision.allow with input as {"identity": contractor, "request": {"method": "prompts/get", "name": "greet"}}
}

test_answers_are_redacted if {
	d := gatehouse.decision with input as call(contractor, read_only)
	"email" in d.redact.detectors
	"card" in d.redact.detectors
}
